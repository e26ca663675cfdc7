package secrets

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestResolveEnv(t *testing.T) {
	r := New(aws.Config{Region: "us-east-1"})
	r.getenv = func(k string) (string, bool) {
		if k == "DB_PASSWORD" {
			return "hunter2", true
		}
		return "", false
	}
	got, err := r.ResolveAll(context.Background(), map[string]string{"PW": "env:DB_PASSWORD"})
	if err != nil || got["PW"] != "hunter2" {
		t.Fatalf("got %v, %v", got, err)
	}
	_, err = r.ResolveAll(context.Background(), map[string]string{"PW": "env:MISSING"})
	if !errors.Is(err, ErrResolve) || !strings.Contains(err.Error(), `secret PW: cannot resolve secret "env:MISSING": the worker has no variable MISSING`) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := r.Resolve(context.Background(), "nope"); !errors.Is(err, ErrResolve) {
		t.Fatalf("malformed: %v", err)
	}
}
