// Package secrets resolves a task's secret references at the moment the
// task starts, on the worker: the values never travel in a queue message
// or sit in the store, only the references do.
//
// A reference is SCHEME:NAME:
//
//	env:VAR                   the worker's own environment variable VAR
//	ssm:/path/to/param        an SSM Parameter Store parameter, decrypted
//	secretsmanager:ID         a Secrets Manager secret's string value
package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/taskiq-go/taskiq-go/plan"
)

// Resolver turns references into values. It makes the AWS clients on first
// use, so a worker whose tasks use only env: references never needs SSM or
// Secrets Manager permissions.
type Resolver struct {
	cfg    aws.Config
	getenv func(string) (string, bool)

	once sync.Once
	ssm  *ssm.Client
	sm   *secretsmanager.Client
}

// New builds a resolver on the worker's AWS configuration.
func New(cfg aws.Config) *Resolver {
	return &Resolver{cfg: cfg, getenv: os.LookupEnv}
}

// ErrResolve wraps every failure to resolve a reference, so the worker can
// fail the task with a message that names the reference but not a value.
var ErrResolve = errors.New("cannot resolve secret")

// Resolve returns the value behind ref.
func (r *Resolver) Resolve(ctx context.Context, ref string) (string, error) {
	scheme, name, err := plan.ParseSecretRef(ref)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrResolve, ref, err)
	}
	r.once.Do(func() {
		r.ssm = ssm.NewFromConfig(r.cfg)
		r.sm = secretsmanager.NewFromConfig(r.cfg)
	})
	switch scheme {
	case "env":
		v, ok := r.getenv(name)
		if !ok {
			return "", fmt.Errorf("%w %q: the worker has no variable %s", ErrResolve, ref, name)
		}
		return v, nil
	case "ssm":
		out, err := r.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
		if err != nil {
			return "", fmt.Errorf("%w %q: %v", ErrResolve, ref, shortErr(err))
		}
		if out.Parameter == nil || out.Parameter.Value == nil {
			return "", fmt.Errorf("%w %q: parameter has no value", ErrResolve, ref)
		}
		return *out.Parameter.Value, nil
	case "secretsmanager":
		out, err := r.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		if err != nil {
			return "", fmt.Errorf("%w %q: %v", ErrResolve, ref, shortErr(err))
		}
		if out.SecretString == nil {
			return "", fmt.Errorf("%w %q: the secret has no string value", ErrResolve, ref)
		}
		return *out.SecretString, nil
	}
	return "", fmt.Errorf("%w %q: unknown scheme", ErrResolve, ref)
}

// ResolveAll resolves every secret of a task into NAME=VALUE pairs.
func (r *Resolver) ResolveAll(ctx context.Context, refs map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(refs))
	for name, ref := range refs {
		v, err := r.Resolve(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// shortErr keeps the API's own message and drops the SDK's request trail.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "api error "); i >= 0 {
		return s[i+len("api error "):]
	}
	return s
}
