package commands

import (
	"fmt"
	"slices"
	"strings"

	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"github.com/taskiq-go/taskiq-go/sqs"
)

// Policy is an IAM policy document, as `init --print-iam-policy` prints it.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a Policy.
type Statement struct {
	Sid       string                         `json:"Sid"`
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// IAM roles init can print a policy for.
const (
	RoleSubmit = "submit" // producers: submit, poll, result, cancel
	RoleWork   = "work"   // workers
	RoleAll    = "all"    // every command but init
	RoleInit   = "init"   // init itself
)

// The actions each role needs. They follow the calls the commands make:
// batch calls are authorised by their single-message action, HeadObject by
// s3:GetObject, HeadBucket by s3:ListBucket.
var (
	producerSQS = []string{"sqs:SendMessage"}
	// Workers send to their own queues too: a fresh copy of a message
	// whose lease they hand over (before SQS's visibility cap, at a last
	// allowed delivery) or renew.
	workerSQS = []string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"}
	// dlq list and redrive read the dead-letter queue and send to the
	// others; redrive resolves a source queue's ARN with GetQueueUrl.
	allSQS    = []string{"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:SendMessage"}
	objectS3  = []string{"s3:DeleteObject", "s3:GetObject", "s3:PutObject"}
	initSQS   = []string{"sqs:CreateQueue", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SetQueueAttributes"}
	initS3    = []string{"s3:CreateBucket", "s3:GetLifecycleConfiguration", "s3:ListBucket", "s3:PutLifecycleConfiguration"}
	roleNames = []string{RoleSubmit, RoleWork, RoleAll, RoleInit}
)

// IAMPolicy builds the least-privilege policy for role over the logical
// queues' band queues, the dead-letter queue and the bucket's prefix. It
// makes no AWS call: ARNs come from the queue URLs, and the warnings say
// where a URL did not tell the region or account (then "*").
//
// With kmsKey, every role that sends, receives, reads or writes task data
// may also use that key (SSE-KMS on the queues and the bucket).
func IAMPolicy(s *Settings, queues []string, role, kmsKey string) (*Policy, []string, error) {
	if !slices.Contains(roleNames, role) {
		return nil, nil, usagef("--role must be one of %s, not %q", strings.Join(roleNames, ", "), role)
	}
	var vague []string // URLs that lack the region or account
	missing := map[string]bool{}
	arn := func(queueURL string) (sqs.QueueID, error) {
		id, err := sqs.ParseQueueURL(queueURL)
		if err != nil {
			return id, &configError{err.Error()}
		}
		if id.Region == "" && s.Region != "" {
			id.Region = s.Region
		}
		if !id.Complete() {
			missing["region"] = missing["region"] || id.Region == ""
			missing["account"] = missing["account"] || id.Account == ""
			vague = append(vague, queueURL)
		}
		return id, nil
	}

	var bands []string
	partition := ""
	var first sqs.QueueID
	for _, q := range queues {
		base, err := s.QueueURLFor(q)
		if err != nil {
			return nil, nil, err
		}
		id, err := arn(base)
		if err != nil {
			return nil, nil, err
		}
		if partition == "" {
			partition = id.Partition
			first = id
		}
		for _, b := range plan.Bands {
			band := id
			band.Name += b.Suffix
			if a := band.ARN(); !slices.Contains(bands, a) {
				bands = append(bands, a)
			}
		}
	}
	dlqID, err := arn(s.DeadLetterURL)
	if err != nil {
		return nil, nil, err
	}
	dlq := dlqID.ARN()
	if partition == "" {
		partition = "aws"
	}

	bucket := "arn:" + partition + ":s3:::" + s.Bucket
	root := s3results.Keys{Prefix: s.Prefix}.Root()
	list := Statement{Sid: "ListTaskData", Effect: "Allow", Action: []string{"s3:ListBucket"}, Resource: []string{bucket}}
	if root != "" {
		// IfExists: S3 decides whether a read of a missing object answers
		// 404 or 403 by checking s3:ListBucket on a request that has no
		// prefix. A plain StringLike would fail that check, and every read
		// of a result not written yet would be "access denied".
		list.Condition = map[string]map[string][]string{"StringLikeIfExists": {"s3:prefix": {root + "*"}}}
	}
	objects := Statement{Sid: "TaskData", Effect: "Allow", Action: objectS3, Resource: []string{bucket + "/" + root + "*"}}
	keys := s3results.Keys{Prefix: s.Prefix}
	arns := func(patterns []string) []string {
		out := make([]string, len(patterns))
		for i, p := range patterns {
			out[i] = bucket + "/" + p
		}
		return out
	}
	read := Statement{Sid: "ReadTaskData", Action: []string{"s3:GetObject"}, Resource: []string{bucket + "/" + root + "*"}}

	p := &Policy{Version: "2012-10-17"}
	add := func(st ...Statement) {
		for _, x := range st {
			x.Effect = "Allow"
			p.Statement = append(p.Statement, x)
		}
	}
	switch role {
	case RoleSubmit:
		// Submitters send to the inboxes, and a batch straight to the
		// levels it fills (ops/route.go): every band of their queues.
		add(Statement{Sid: "SendTasks", Action: producerSQS, Resource: bands}, list, read,
			Statement{Sid: "WriteTasks", Action: []string{"s3:PutObject"}, Resource: arns(keys.SubmitterPuts())},
			Statement{Sid: "WithdrawTasks", Action: []string{"s3:DeleteObject"}, Resource: arns(keys.SubmitterDeletes())})
	case RoleWork:
		add(Statement{Sid: "ConsumeTasks", Action: workerSQS, Resource: bands},
			// Send: a message it refuses; read and hide briefly: the
			// dead-letter check (never delete: operators redrive).
			Statement{Sid: "DeadLetter", Action: []string{"sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"}, Resource: []string{dlq}},
			list, read,
			Statement{Sid: "RecordAttempts", Action: []string{"s3:PutObject"}, Resource: arns(keys.WorkerPuts())},
			Statement{Sid: "RemoveMarkers", Action: []string{"s3:DeleteObject"}, Resource: arns(keys.WorkerDeletes())})
	case RoleAll:
		add(Statement{Sid: "Queues", Action: allSQS, Resource: append(bands, dlq)}, list, objects)
	case RoleInit:
		add(Statement{Sid: "CreateQueues", Action: initSQS, Resource: append(bands, dlq)},
			Statement{Sid: "CreateBucket", Action: append(slices.Clone(initS3), "s3:PutEncryptionConfiguration", "s3:GetEncryptionConfiguration"), Resource: []string{bucket}})
	}
	if kmsKey != "" && role != RoleInit {
		add(kmsStatement(kmsKey, partition, first))
	}
	return p, vagueWarnings(vague, missing), nil
}

// kmsStatement lets a role encrypt and decrypt with the deployment's KMS
// key: SQS and S3 ask KMS for a data key on every write (S3 Bucket Keys
// make that rare) and to decrypt it on every read. An alias or a bare key
// id is not a resource IAM matches, so those become the account's keys
// narrowed by a condition on the alias or the key id.
func kmsStatement(key, partition string, q sqs.QueueID) Statement {
	st := Statement{Sid: "EncryptionKey", Action: []string{"kms:Decrypt", "kms:GenerateDataKey"}}
	if strings.HasPrefix(key, "arn:") {
		st.Resource = []string{key}
		return st
	}
	region, account := q.Region, q.Account
	if region == "" {
		region = "*"
	}
	if account == "" {
		account = "*"
	}
	keys := "arn:" + partition + ":kms:" + region + ":" + account + ":key/"
	if strings.HasPrefix(key, "alias/") {
		st.Resource = []string{keys + "*"}
		st.Condition = map[string]map[string][]string{"ForAnyValue:StringEquals": {"kms:ResourceAliases": {key}}}
		return st
	}
	st.Resource = []string{keys + key}
	return st
}

// vagueWarnings says, once, which ARN parts are wildcards and why.
func vagueWarnings(urls []string, missing map[string]bool) []string {
	if len(urls) == 0 {
		return nil
	}
	var parts []string
	for _, k := range []string{"region", "account"} {
		if missing[k] {
			parts = append(parts, k)
		}
	}
	what := "queue URL " + urls[0] + " does not"
	if len(urls) > 1 {
		what = fmt.Sprintf("%d queue URLs (such as %s) do not", len(urls), urls[0])
	}
	return []string{
		fmt.Sprintf("%s tell the %s: the policy has * for %s", what, strings.Join(parts, " or "), strings.Join(parts, " and ")),
		"hint: queue URLs of the form https://sqs.REGION.amazonaws.com/ACCOUNT/NAME give both; --region gives the region",
	}
}
