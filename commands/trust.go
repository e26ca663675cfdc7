package commands

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/plan"
)

// Flag names of the trust settings.
const (
	flagSigningKey = "signing-key"
	flagVerifyKey  = "verify-key"
	flagAllow      = "allow"
	flagPassEnv    = "pass-env"
	flagMaxAge     = "max-task-age"
)

// DefaultMaxTaskAge is the age past which a verifying worker refuses a
// task: init's default expiry of task data (DefaultExpireDays).
const DefaultMaxTaskAge = DefaultExpireDays * 24 * time.Hour

// signingFlags are submit's: the private key every task is signed with.
func signingFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagSigningKey, Category: "Trust", Usage: "sign every task with the Ed25519 private key in `FILE` (see taskiq-go keygen)", EnvVars: []string{"TASKIQ_GO_SIGNING_KEY"}},
	}
}

// trustFlags are the worker's: which tasks it runs, with what environment.
func trustFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: flagVerifyKey, Category: "Trust", Usage: "run only tasks signed by the public key in `FILE`, repeatable (old and new key while rotating); without one, tasks are not verified", EnvVars: []string{"TASKIQ_GO_VERIFY_KEYS"}},
		&cli.StringSliceFlag{Name: flagAllow, Category: "Trust", Usage: "allow only commands matching `PATTERN` (a name such as python3, or a path glob such as /opt/venv/bin/*), repeatable; default: any", EnvVars: []string{"TASKIQ_GO_ALLOW"}},
		&cli.DurationFlag{Name: flagMaxAge, Category: "Trust", Value: DefaultMaxTaskAge, Usage: "with --verify-key, refuse a task submitted longer than `AGE` ago as a replay: set it to the bucket's expiry (init --expire-days); 0: no limit", EnvVars: []string{"TASKIQ_GO_MAX_TASK_AGE"}},
		&cli.StringSliceFlag{Name: flagPassEnv, Category: "Trust", Usage: "pass the worker's variable `NAME` (or glob such as DAGSTER_*) to tasks, repeatable; tasks otherwise get only PATH, HOME, USER, LANG, LC_*, TZ, TMPDIR and the like", EnvVars: []string{"TASKIQ_GO_PASS_ENV"}},
	}
}

// Trust is the resolved trust settings of a worker.
type Trust struct {
	Verifier   *plan.Verifier
	MaxTaskAge time.Duration
	Allow      []string
	PassEnv    []string
}

// resolveTrust reads the worker's trust settings: flags and their
// environment variables first, then the config file's verify_keys, allow
// and pass_env.
func resolveTrust(cliContext *cli.Context) (*Trust, error) {
	fc, err := loadFile(cliContext.String(flagConfig))
	if err != nil {
		return nil, err
	}
	maxAge := cliContext.Duration(flagMaxAge)
	if !cliContext.IsSet(flagMaxAge) && fc.MaxTaskAge != "" {
		if maxAge, err = time.ParseDuration(fc.MaxTaskAge); err != nil {
			return nil, &configError{fmt.Sprintf("config file: max_task_age %q is not a duration (write it like 720h)", fc.MaxTaskAge)}
		}
	}
	if maxAge < 0 {
		return nil, usagef("--%s must be 0 (no limit) or more, not %s", flagMaxAge, maxAge)
	}
	t := &Trust{
		MaxTaskAge: maxAge,
		Allow:      orList(nameList(cliContext, flagAllow), fc.Allow),
		PassEnv:    orList(nameList(cliContext, flagPassEnv), fc.PassEnv),
	}
	paths := orList(nameList(cliContext, flagVerifyKey), fc.VerifyKeys)
	if len(paths) > 0 {
		var keys []ed25519.PublicKey
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, &configError{fmt.Sprintf("cannot read verify key: %v", err)}
			}
			k, err := plan.ParseVerifyKey(data)
			if err != nil {
				return nil, &configError{fmt.Sprintf("verify key %s %v", p, err)}
			}
			keys = append(keys, k)
		}
		t.Verifier = plan.NewVerifier(keys...)
	}
	return t, nil
}

// resolveSigningKey reads submit's signing key, or nil when none is set.
func resolveSigningKey(cliContext *cli.Context) (*plan.SigningKey, error) {
	fc, err := loadFile(cliContext.String(flagConfig))
	if err != nil {
		return nil, err
	}
	path := pick(cliContext, flagSigningKey, fc.SigningKey)
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &configError{fmt.Sprintf("cannot read signing key: %v", err)}
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, &configError{fmt.Sprintf("signing key %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())}
	}
	k, err := plan.ParseSigningKey(data)
	if err != nil {
		return nil, &configError{fmt.Sprintf("signing key %s: %v", path, err)}
	}
	return k, nil
}

func orList(a, b []string) []string {
	if len(a) > 0 {
		return a
	}
	return b
}
