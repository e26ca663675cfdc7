package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/taskiq-go/taskiq-go/backend"
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// Defaults of init's flags.
const (
	// DefaultMaxReceiveCount is high because a worker that shuts down
	// releases its messages, and SQS counts every receive: a queue behind a
	// fleet that scales in and out would otherwise dead-letter healthy tasks.
	DefaultMaxReceiveCount   = 20
	DefaultVisibilityTimeout = 30 * time.Second
	DefaultExpireDays        = 30
	// deadLetterRetention keeps dead letters as long as SQS allows (14
	// days): a message keeps its first enqueue time when it is moved, so a
	// shorter retention could drop it on arrival.
	deadLetterRetention = 14 * 24 * time.Hour
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create the queues, the dead-letter queue and the bucket (idempotent)",
		Description: "Creates what a deployment needs, and reports what already existed: the dead-letter queue;\n" +
			"for each logical queue (default, those of the config file's queues map, and --queue) its inbox\n" +
			"NAME and its twelve priority-level queues (NAME-p10 ... NAME-p0, NAME-n), each with a redrive policy to\n" +
			"the dead-letter queue (an existing queue with another policy is updated); the bucket; and a\n" +
			"lifecycle rule that expires objects under the prefix after --expire-days. Queue names are the\n" +
			"last path segments of their URLs. Safe to run again at any time.\n\n" +
			"--print-iam-policy makes no AWS call: it prints the IAM policy that the commands need for this\n" +
			"configuration, for --role submit (producers: submit, poll, result, cancel), work (workers),\n" +
			"all (those and the operator commands queues, workers, dlq) or init (this command itself).",
		Flags: withConn(
			&cli.StringSliceFlag{Name: "queue", Aliases: []string{"q"}, Usage: "also create logical queue `NAME`, repeatable"},
			&cli.IntFlag{Name: "max-receive-count", Value: DefaultMaxReceiveCount, Usage: "receives before SQS moves a message to the dead-letter queue (`N`, 1-1000); workers releasing tasks on shutdown count too"},
			&cli.DurationFlag{Name: "visibility-timeout", Value: DefaultVisibilityTimeout, Usage: "default visibility `DURATION` of new queues (workers set their own lease)"},
			&cli.IntFlag{Name: "expire-days", Value: DefaultExpireDays, Usage: "expire task data under the prefix after `N` days (0: no lifecycle rule)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per step"},
			&cli.BoolFlag{Name: "print-iam-policy", Usage: "print the IAM policy the commands need, and create nothing"},
			&cli.StringFlag{Name: "role", Value: "all", Usage: "with --print-iam-policy: `ROLE` submit, work, all or init"},
			&cli.StringFlag{Name: "kms-key", Usage: "encrypt queues and the bucket with this KMS `KEY` (id, alias/NAME or ARN); without it queues use SSE-SQS", EnvVars: []string{"TASKIQ_GO_KMS_KEY"}},
		),
		Action: func(cliContext *cli.Context) error {
			if cliContext.Args().Present() {
				return usagef("init takes no arguments (did you mean --queue?)")
			}
			s, err := resolveQueueAndBucket(cliContext)
			if err != nil {
				return err
			}
			if !validBucketName(s.Bucket) {
				return &configError{fmt.Sprintf("bucket name %q is not valid in S3: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit", s.Bucket)}
			}
			names := initQueueNames(s, nameList(cliContext, "queue"))
			for _, n := range names {
				if err := plan.ValidName(n); err != nil {
					return usagef("queue name %v", err)
				}
			}
			if cliContext.Bool("print-iam-policy") {
				policy, warnings, err := IAMPolicy(s, names, cliContext.String("role"), cliContext.String("kms-key"))
				if err != nil {
					return err
				}
				for _, w := range warnings {
					fmt.Fprintf(cliContext.App.ErrWriter, "taskiq-go: %s\n", w)
				}
				return writePolicy(cliContext.App.Writer, policy)
			}
			if cliContext.IsSet("role") {
				return usagef("--role goes with --print-iam-policy")
			}
			o := InitOptions{
				Queues:            names,
				MaxReceiveCount:   cliContext.Int("max-receive-count"),
				VisibilityTimeout: cliContext.Duration("visibility-timeout"),
				ExpireDays:        cliContext.Int("expire-days"),
				KMSKey:            cliContext.String("kms-key"),
			}
			if err := o.check(); err != nil {
				return err
			}
			ctx, _, stop := commandContext(cliContext)
			defer stop()
			be, err := s.open(ctx, 0)
			if err != nil {
				return err
			}
			steps, err := Init(ctx, s, be, o)
			out := cliContext.App.Writer
			for _, st := range steps {
				if cliContext.Bool("json") {
					_ = writeJSON(out, st)
				} else {
					fmt.Fprintln(out, st)
				}
			}
			return err
		},
	}
}

// initQueueNames lists the logical queues of a deployment: default, the
// config file's, then those named on the command line, each once.
func initQueueNames(s *Settings, extra []string) []string {
	names := []string{plan.DefaultQueue}
	for _, n := range append(s.QueueNames(), extra...) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// validBucketName applies S3's naming rules for new buckets, so that a bad
// name is a configuration error before any call rather than an S3 error
// after the queues were made.
func validBucketName(b string) bool {
	if len(b) < 3 || len(b) > 63 || strings.Contains(b, "..") {
		return false
	}
	for i, r := range b {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || i == len(b)-1 || r != '.' && r != '-') {
			return false
		}
	}
	return true
}

// InitOptions are what init creates beyond the settings.
type InitOptions struct {
	// Queues are the logical queue names.
	Queues            []string
	MaxReceiveCount   int
	VisibilityTimeout time.Duration
	// ExpireDays is the age at which task data expires; 0 leaves the
	// bucket's lifecycle alone.
	ExpireDays int
	// KMSKey, when set, encrypts every queue and the bucket's objects
	// with that KMS key; without it queues get SSE-SQS.
	KMSKey string
}

// encryptionAttrs are the queue attributes that encryption at rest needs.
func (o InitOptions) encryptionAttrs() map[string]string {
	if o.KMSKey != "" {
		return map[string]string{sqs.AttrKmsMasterKeyID: o.KMSKey}
	}
	return map[string]string{sqs.AttrSqsManagedSseEnabled: "true"}
}

func (o InitOptions) check() error {
	switch {
	case o.MaxReceiveCount < 1 || o.MaxReceiveCount > 1000:
		return usagef("--max-receive-count must be between 1 and 1000, not %d", o.MaxReceiveCount)
	case o.VisibilityTimeout < 0 || o.VisibilityTimeout > 12*time.Hour || o.VisibilityTimeout%time.Second != 0:
		return usagef("--visibility-timeout must be whole seconds between 0 and 12h, not %s", o.VisibilityTimeout)
	case o.ExpireDays < 0:
		return usagef("--expire-days must be 0 (no rule) or more, not %d", o.ExpireDays)
	}
	return nil
}

// InitStep is one thing init did or found.
type InitStep struct {
	// Action is created, exists, updated or skipped.
	Action string `json:"action"`
	// Kind is queue, bucket or lifecycle.
	Kind string `json:"kind"`
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
	// Queue and Band place a queue: its logical queue and priority band
	// ("" for the dead-letter queue).
	Queue  string `json:"queue,omitempty"`
	Band   string `json:"band,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// String is the step's line in init's plain output.
func (st InitStep) String() string {
	s := st.Action + " " + st.Kind + " " + st.Name
	if st.URL != "" {
		s += " " + st.URL
	}
	if st.Detail != "" {
		s += " (" + st.Detail + ")"
	}
	return s
}

// Init creates what is missing and returns a step per queue, bucket and
// lifecycle rule, in order, up to the first error.
func Init(ctx context.Context, s *Settings, be *backend.Backend, o InitOptions) ([]InitStep, error) {
	var steps []InitStep
	dlqName := sqs.QueueName(s.DeadLetterURL)
	if dlqName == "" {
		return nil, &configError{fmt.Sprintf("dead-letter queue URL %q has no queue name", s.DeadLetterURL)}
	}
	dlqURL, action, detail, err := ensureQueue(ctx, be, dlqName, map[string]string{
		sqs.AttrMessageRetentionPeriod: strconv.Itoa(int(deadLetterRetention / time.Second)),
	}, o.encryptionAttrs())
	if err != nil {
		return steps, err
	}
	steps = append(steps, InitStep{Action: action, Kind: "queue", Name: dlqName, URL: dlqURL, Detail: joinDetail("dead-letter queue", detail)})
	attrs, err := be.Queue.QueueAttributes(ctx, dlqURL, sqs.AttrQueueArn)
	if err != nil {
		return steps, err
	}
	if attrs[sqs.AttrQueueArn] == "" {
		return steps, fmt.Errorf("the endpoint reports no ARN for queue %s", dlqName)
	}
	policy, _ := json.Marshal(map[string]string{
		"deadLetterTargetArn": attrs[sqs.AttrQueueArn],
		"maxReceiveCount":     strconv.Itoa(o.MaxReceiveCount),
	})

	seen := map[string]bool{dlqName: true}
	for _, q := range o.Queues {
		base, err := s.QueueURLFor(q)
		if err != nil {
			return steps, err
		}
		for _, b := range plan.Bands {
			name := sqs.QueueName(base + b.Suffix)
			if name == "" {
				return steps, &configError{fmt.Sprintf("queue URL %q has no queue name", base)}
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			want := o.encryptionAttrs()
			want[sqs.AttrRedrivePolicy] = string(policy)
			u, action, detail, err := ensureQueue(ctx, be, name, map[string]string{
				sqs.AttrVisibilityTimeout: strconv.Itoa(int(o.VisibilityTimeout / time.Second)),
			}, want)
			if err != nil {
				return steps, err
			}
			steps = append(steps, InitStep{Action: action, Kind: "queue", Name: name, URL: u, Queue: q, Band: b.Name, Detail: detail})
		}
	}

	exists, err := be.Store.BucketExists(ctx)
	if err != nil {
		return steps, err
	}
	st := InitStep{Action: "exists", Kind: "bucket", Name: s.Bucket}
	if !exists {
		if err := be.Store.CreateBucket(ctx); err != nil {
			if errors.Is(err, s3results.ErrBucketTaken) {
				return steps, &configError{fmt.Sprintf("bucket %s: %v; choose another --bucket", s.Bucket, s3results.ErrBucketTaken)}
			}
			return steps, err
		}
		st.Action = "created"
	}
	steps = append(steps, st)

	if o.KMSKey != "" {
		st, err := ensureBucketKMS(ctx, be, o.KMSKey)
		if err != nil {
			return steps, err
		}
		steps = append(steps, st)
	}

	if o.ExpireDays == 0 {
		return steps, nil
	}
	st, err = ensureExpiry(ctx, be, o.ExpireDays)
	if err != nil {
		return steps, err
	}
	return append(steps, st), nil
}

// sameRedrive compares two RedrivePolicy attributes. AWS answers the count
// as a number although it is set as a string, so values are compared as text.
func sameRedrive(a, b string) bool {
	var pa, pb struct {
		Target string `json:"deadLetterTargetArn"`
		Count  any    `json:"maxReceiveCount"`
	}
	if json.Unmarshal([]byte(a), &pa) != nil || json.Unmarshal([]byte(b), &pb) != nil {
		return false
	}
	return pa.Target == pb.Target && fmt.Sprint(pa.Count) == fmt.Sprint(pb.Count)
}

// ensureQueue looks the queue up and creates it with attrs and want when
// missing. An existing queue whose attributes differ from want gets them
// set, except that SSE-SQS is not forced on a queue that already has a KMS
// key. It returns the URL, what was done and, for an update, what was set.
func ensureQueue(ctx context.Context, be *backend.Backend, name string, attrs, want map[string]string) (string, string, string, error) {
	u, err := be.Queue.QueueURL(ctx, name, "")
	if errors.Is(err, plan.ErrQueueNotFound) {
		all := maps.Clone(attrs)
		maps.Copy(all, want)
		u, err = be.Queue.CreateQueue(ctx, name, all)
		if err != nil {
			return "", "", "", err
		}
		return u, "created", "", nil
	}
	if err != nil {
		return "", "", "", err
	}
	cur, err := be.Queue.QueueAttributes(ctx, u)
	if err != nil {
		return "", "", "", err
	}
	set := map[string]string{}
	var what []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		v := want[k]
		switch {
		case k == sqs.AttrRedrivePolicy && sameRedrive(cur[k], v):
		case k == sqs.AttrSqsManagedSseEnabled && (strings.EqualFold(cur[k], v) || cur[sqs.AttrKmsMasterKeyID] != ""):
		case k == sqs.AttrSqsManagedSseEnabled && !reported(cur, k):
			// SQS reports the attribute as true or false; an endpoint
			// that does not report it has no SSE-SQS to turn on.
		case k != sqs.AttrRedrivePolicy && cur[k] == v:
		default:
			set[k] = v
			what = append(what, attrWords[k])
		}
	}
	if len(set) == 0 {
		return u, "exists", "", nil
	}
	if err := be.Queue.SetQueueAttributes(ctx, u, set); err != nil {
		return "", "", "", err
	}
	return u, "updated", strings.Join(what, ", ") + " set", nil
}

func joinDetail(a, b string) string {
	if b == "" {
		return a
	}
	return a + ", " + b
}

func reported(attrs map[string]string, k string) bool {
	_, ok := attrs[k]
	return ok
}

// attrWords says in init's output what an updated queue attribute is.
var attrWords = map[string]string{
	sqs.AttrRedrivePolicy:        "redrive policy",
	sqs.AttrKmsMasterKeyID:       "KMS encryption",
	sqs.AttrSqsManagedSseEnabled: "SSE-SQS encryption",
}

// ensureBucketKMS makes SSE-KMS with key the bucket's default encryption;
// an endpoint without bucket encryption is reported, not failed on.
func ensureBucketKMS(ctx context.Context, be *backend.Backend, key string) (InitStep, error) {
	st := InitStep{Kind: "encryption", Name: "s3://" + be.Store.Bucket(), Detail: "SSE-KMS with " + key}
	cur, err := be.Store.DefaultEncryption(ctx)
	if err == nil && cur.Algorithm == "aws:kms" && cur.KMSKey == key {
		st.Action = "exists"
		return st, nil
	}
	if err == nil {
		err = be.Store.SetDefaultKMSEncryption(ctx, key)
	}
	switch {
	case errors.Is(err, s3results.ErrNotSupported):
		st.Action, st.Detail = "skipped", "the endpoint does not support bucket encryption"
		return st, nil
	case err != nil:
		return st, err
	case cur.Algorithm != "":
		st.Action = "updated"
		st.Detail += ", was " + cur.Algorithm
	default:
		st.Action = "created"
	}
	return st, nil
}

// ensureExpiry puts the lifecycle rule that expires task data, unless the
// same rule is there; an endpoint without lifecycle rules is reported, not
// failed on, since the rule only saves storage.
func ensureExpiry(ctx context.Context, be *backend.Backend, days int) (InitStep, error) {
	st := InitStep{Kind: "lifecycle", Name: "s3://" + be.Store.Bucket() + "/" + be.Store.Keys().Root(),
		Detail: fmt.Sprintf("expire after %d days", days)}
	cur, found, err := be.Store.ExpiryDays(ctx)
	if err == nil && found && cur == days {
		st.Action = "exists"
		return st, nil
	}
	if err == nil {
		err = be.Store.SetExpiryDays(ctx, days)
	}
	switch {
	case errors.Is(err, s3results.ErrNotSupported):
		st.Action, st.Detail = "skipped", "the endpoint does not support lifecycle rules"
		return st, nil
	case err != nil:
		return st, err
	case found:
		st.Action, st.Detail = "updated", fmt.Sprintf("expire after %d days, was %d", days, cur)
	default:
		st.Action = "created"
	}
	return st, nil
}

func writePolicy(w io.Writer, p *Policy) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}
