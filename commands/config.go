package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// DefaultPrefix is the key prefix in the bucket when none is configured.
const DefaultPrefix = "taskiq"

// fileConfig is the YAML config file. Unknown keys are refused, so that a
// typo does not silently fall back to a default.
type fileConfig struct {
	QueueURL      string            `yaml:"queue_url"`
	DeadLetterURL string            `yaml:"dead_letter_queue_url"`
	Queues        map[string]string `yaml:"queues"`
	Bucket        string            `yaml:"bucket"`
	Prefix        *string           `yaml:"prefix"`
	Region        string            `yaml:"region"`
	Profile       string            `yaml:"profile"`
	EndpointURL   string            `yaml:"endpoint_url"`
	// Trust settings: submit's signing key, the worker's verify keys,
	// command allowlist and passed-on environment.
	SigningKey string   `yaml:"signing_key"`
	VerifyKeys []string `yaml:"verify_keys"`
	Allow      []string `yaml:"allow"`
	PassEnv    []string `yaml:"pass_env"`
	// MaxTaskAge is --max-task-age, written as a Go duration (720h).
	MaxTaskAge string `yaml:"max_task_age"`
}

// Settings are the resolved connection settings: flags, then environment,
// then the config file, then defaults.
type Settings struct {
	QueueURL      string
	DeadLetterURL string
	Queues        map[string]string
	Bucket        string
	Prefix        string
	Region        string
	Profile       string
	EndpointURL   string
}

// Shared flag names.
const (
	flagConfig   = "config"
	flagQueueURL = "queue-url"
	flagDLQ      = "dead-letter-queue-url"
	flagBucket   = "bucket"
	flagPrefix   = "prefix"
	flagRegion   = "region"
	flagProfile  = "profile"
	flagEndpoint = "endpoint-url"
)

const categoryConn = "Connection"

// connFlags are the settings every command that talks to AWS takes.
func connFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagConfig, Category: categoryConn, Usage: "YAML config `FILE` (keys: " + strings.Join(configKeys, ", ") + ")", EnvVars: []string{"TASKIQ_GO_CONFIG"}},
		&cli.StringFlag{Name: flagQueueURL, Category: categoryConn, Usage: "`URL` of the default SQS queue", EnvVars: []string{"TASKIQ_GO_QUEUE_URL", "DAGSTER_TASKIQ_SQS_QUEUE_URL"}},
		&cli.StringFlag{Name: flagDLQ, Category: categoryConn, Usage: "`URL` of the dead-letter queue (default: the queue URL with -dlq appended)", EnvVars: []string{"TASKIQ_GO_DEAD_LETTER_QUEUE_URL"}},
		&cli.StringFlag{Name: flagBucket, Category: categoryConn, Usage: "S3 `BUCKET` for results, logs and large tasks", EnvVars: []string{"TASKIQ_GO_BUCKET"}},
		&cli.StringFlag{Name: flagPrefix, Category: categoryConn, Usage: "key `PREFIX` inside the bucket (default \"" + DefaultPrefix + "\")", EnvVars: []string{"TASKIQ_GO_PREFIX"}},
		&cli.StringFlag{Name: flagRegion, Category: categoryConn, Usage: "AWS `REGION` (default: AWS_REGION, else the queue URL's)", EnvVars: []string{"TASKIQ_GO_REGION"}},
		&cli.StringFlag{Name: flagProfile, Category: categoryConn, Usage: "AWS shared-config `PROFILE`", EnvVars: []string{"TASKIQ_GO_PROFILE"}},
		&cli.StringFlag{Name: flagEndpoint, Category: categoryConn, Usage: "`URL` serving SQS and S3 instead of AWS (e.g. from `taskiq-go dev`; AWS_ENDPOINT_URL also works)", EnvVars: []string{"TASKIQ_GO_ENDPOINT_URL", "DAGSTER_TASKIQ_SQS_ENDPOINT_URL"}},
	}
}

// withConn appends the connection flags to a command's own flags.
func withConn(own ...cli.Flag) []cli.Flag { return append(own, connFlags()...) }

func loadFile(path string) (*fileConfig, error) {
	var fc fileConfig
	if path == "" {
		return &fc, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &configError{fmt.Sprintf("cannot read config file: %v", err)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return nil, &configError{fmt.Sprintf("config file %s: %s", path, yamlMessage(err))}
	}
	return &fc, nil
}

// The lines of a yaml.v3 type error, which name Go types
// ("field x not found in type commands.fileConfig", "cannot unmarshal !!int
// `3` into map[string]string").
var (
	yamlUnknownKey = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)
	yamlWrongType  = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) (?:`(.*)` )?into (.+)$")
)

// yamlMessage says what is wrong with the config file in its own words:
// the key or the kind of value, never the Go type it is read into.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := yamlUnknownKey.FindStringSubmatch(e); m != nil {
			msgs = append(msgs, fmt.Sprintf("line %s: unknown key %q (the keys are %s)", m[1], m[2], strings.Join(configKeys, ", ")))
			continue
		}
		if m := yamlWrongType.FindStringSubmatch(e); m != nil {
			got := yamlTagWords[m[2]]
			if got == "" {
				got = "a " + m[2]
			}
			if m[3] != "" {
				got += " (" + m[3] + ")"
			}
			want := yamlTypeWords[m[4]]
			if want == "" {
				want = "another kind of value"
			}
			msgs = append(msgs, fmt.Sprintf("line %s: expected %s, not %s", m[1], want, got))
			continue
		}
		msgs = append(msgs, e)
	}
	return strings.Join(msgs, "; ")
}

// configKeys are the keys of the config file, in the order the help lists them.
var configKeys = []string{"queue_url", "dead_letter_queue_url", "queues", "bucket", "prefix", "region", "profile",
	"endpoint_url", "signing_key", "verify_keys", "allow", "pass_env", "max_task_age"}

var yamlTagWords = map[string]string{"str": "a string", "int": "a number", "float": "a number", "bool": "true or false",
	"seq": "a list", "map": "a mapping", "null": "nothing", "timestamp": "a time"}

var yamlTypeWords = map[string]string{"string": "a string", "[]string": "a list of strings",
	"map[string]string": "a mapping of names to strings", "int": "a whole number", "bool": "true or false"}

// pick returns a setting: the flag's value (urfave reads its environment
// variables too), else the first of those variables that is not empty, else
// the config file's. urfave stops at the first variable that is set, even to
// "", so an empty TASKIQ_GO_QUEUE_URL (a blank deployment template) would
// otherwise hide DAGSTER_TASKIQ_SQS_QUEUE_URL.
func pick(cliContext *cli.Context, flag string, file string) string {
	if v := cliContext.String(flag); v != "" {
		return v
	}
	for _, f := range cliContext.Command.Flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == flag {
			for _, env := range sf.EnvVars {
				if v := os.Getenv(env); v != "" {
					return v
				}
			}
		}
	}
	return file
}

// resolveSettings applies the precedence: flags and their environment
// variables (urfave does both), then the config file, then defaults.
func resolveSettings(cliContext *cli.Context) (*Settings, error) {
	fc, err := loadFile(cliContext.String(flagConfig))
	if err != nil {
		return nil, err
	}
	s := &Settings{
		QueueURL:      pick(cliContext, flagQueueURL, fc.QueueURL),
		DeadLetterURL: pick(cliContext, flagDLQ, fc.DeadLetterURL),
		Bucket:        pick(cliContext, flagBucket, fc.Bucket),
		Region:        pick(cliContext, flagRegion, fc.Region),
		Profile:       pick(cliContext, flagProfile, fc.Profile),
		EndpointURL:   pick(cliContext, flagEndpoint, fc.EndpointURL),
		Queues:        fc.Queues,
		Prefix:        DefaultPrefix,
	}
	if fc.Prefix != nil {
		s.Prefix = *fc.Prefix
	}
	if cliContext.IsSet(flagPrefix) {
		s.Prefix = cliContext.String(flagPrefix)
	}
	if s.DeadLetterURL == "" && s.QueueURL != "" {
		s.DeadLetterURL = s.QueueURL + "-dlq"
	}
	return s, nil
}

func missing(what, flag, env, key string) error {
	return &configError{fmt.Sprintf("no %s: set --%s or %s (or %s in the --config file); `taskiq-go dev` prints one for a local endpoint", what, flag, env, key)}
}

// resolveQueueAndBucket resolves the settings of a command that needs both
// the default queue and the bucket, failing before any network call when
// either is missing.
func resolveQueueAndBucket(cliContext *cli.Context) (*Settings, error) {
	s, err := resolveSettings(cliContext)
	if err != nil {
		return nil, err
	}
	if err := s.needQueue(); err != nil {
		return nil, err
	}
	if err := s.needBucket(); err != nil {
		return nil, err
	}
	return s, nil
}

// needQueue and needBucket check the settings a command needs before any
// network call, so that a missing one is reported at once.
func (s *Settings) needQueue() error {
	if s.QueueURL == "" {
		return missing("queue URL", flagQueueURL, "TASKIQ_GO_QUEUE_URL", "queue_url")
	}
	return nil
}

func (s *Settings) needBucket() error {
	if s.Bucket == "" {
		return missing("bucket", flagBucket, "TASKIQ_GO_BUCKET", "bucket")
	}
	return nil
}

// QueueURLFor maps a logical queue name to its URL: the config file's
// explicit map first, then the naming rule (default queue URL + "-NAME").
func (s *Settings) QueueURLFor(name string) (string, error) {
	if name == "" {
		name = plan.DefaultQueue
	}
	if u, ok := s.Queues[name]; ok {
		return u, nil
	}
	if err := s.needQueue(); err != nil {
		return "", err
	}
	if err := plan.ValidName(name); err != nil {
		return "", usagef("queue name %v", err)
	}
	u, err := sqs.DeriveQueueURL(s.QueueURL, name)
	if err != nil {
		return "", &configError{err.Error()}
	}
	return u, nil
}

// InboxURL is the SQS queue every task of the named logical queue is sent
// to, whatever its priority: the queue's inbox (plan.Bands).
func (s *Settings) InboxURL(name string) (string, error) {
	return s.QueueURLFor(name)
}

// QueueNames lists the logical names the config file maps explicitly.
func (s *Settings) QueueNames() []string {
	names := make([]string, 0, len(s.Queues))
	for n := range s.Queues {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// open builds the AWS clients for the settings.
func (s *Settings) open(ctx context.Context, maxAttempts int) (*backend.Backend, error) {
	return backend.Open(ctx, backend.Options{
		Region: s.Region, Profile: s.Profile, EndpointURL: s.EndpointURL,
		Bucket: s.Bucket, Prefix: s.Prefix, QueueURL: s.QueueURL, MaxAttempts: maxAttempts,
	})
}
