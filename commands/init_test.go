package commands

import (
	"github.com/taskiq-go/taskiq-go/plan"
	"github.com/taskiq-go/taskiq-go/s3results"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestValidBucketName(t *testing.T) {
	for name, want := range map[string]bool{
		"taskiq": true, "my-company.taskiq-2": true, "abc": true,
		"ab": false, "Taskiq": false, "my_bucket": false, "-taskiq": false, "taskiq.": false,
		"a..b": false, strings.Repeat("a", 64): false,
	} {
		if got := validBucketName(name); got != want {
			t.Errorf("validBucketName(%q) = %v, want %v", name, got, want)
		}
	}
}

// AWS answers maxReceiveCount as a number, emulators and our own policy as
// a string: both must compare equal, or every init would say "updated".
func TestSameRedrive(t *testing.T) {
	ours := `{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:q-dlq","maxReceiveCount":"20"}`
	for other, want := range map[string]bool{
		`{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:q-dlq","maxReceiveCount":20}`:   true,
		`{"maxReceiveCount":"20","deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:q-dlq"}`: true,
		`{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:q-dlq","maxReceiveCount":10}`:   false,
		`{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:other","maxReceiveCount":20}`:   false,
		``: false,
	} {
		if got := sameRedrive(other, ours); got != want {
			t.Errorf("sameRedrive(%s) = %v, want %v", other, got, want)
		}
	}
}

func TestExcerpt(t *testing.T) {
	if got := excerpt("short\tbody"); got != `"short\tbody"` {
		t.Errorf("excerpt = %s", got)
	}
	long := strings.Repeat("é", 40) // 80 bytes: the cut must not split a rune
	got := excerpt(long)
	if !strings.HasSuffix(got, `"...`) || strings.Contains(got, `\x`) {
		t.Errorf("excerpt(long) = %s", got)
	}
}

func TestIAMPolicyRoles(t *testing.T) {
	s := &Settings{QueueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/taskiq", Bucket: "b", Prefix: "p"}
	s.DeadLetterURL = s.QueueURL + "-dlq"
	sids := map[string]string{
		RoleSubmit: "SendTasks ListTaskData ReadTaskData WriteTasks WithdrawTasks",
		RoleWork:   "ConsumeTasks DeadLetter ListTaskData ReadTaskData RecordAttempts RemoveMarkers",
		RoleAll:    "Queues ListTaskData TaskData",
		RoleInit:   "CreateQueues CreateBucket",
	}
	for role, want := range sids {
		p, warnings, err := IAMPolicy(s, []string{"default"}, role, "")
		if err != nil || len(warnings) > 0 {
			t.Fatalf("%s: %v %v", role, err, warnings)
		}
		var got []string
		for _, st := range p.Statement {
			got = append(got, st.Sid)
			if st.Effect != "Allow" || len(st.Action) == 0 || len(st.Resource) == 0 {
				t.Errorf("%s: incomplete statement %+v", role, st)
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: statements %v, want %s", role, got, want)
		}
	}
	// Producers never touch the dead-letter queue.
	p, _, _ := IAMPolicy(s, []string{"default"}, RoleSubmit, "")
	if strings.Contains(strings.Join(p.Statement[0].Resource, " "), "dlq") {
		t.Errorf("submit may send to the dead-letter queue: %v", p.Statement[0].Resource)
	}
	// A batch goes straight to the levels it fills: submit sends to every band.
	if got := p.Statement[0].Resource; len(got) != len(plan.Bands) || !strings.HasSuffix(got[1], ":taskiq-p10") {
		t.Errorf("submit may send to %v, want the inbox and every level", got)
	}
}

// With a KMS key every data role may use it, by ARN, by alias (through a
// condition) or by key id; init itself needs no KMS permission.
func TestIAMPolicyKMS(t *testing.T) {
	s := &Settings{QueueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/taskiq", Bucket: "b", Prefix: "p"}
	s.DeadLetterURL = s.QueueURL + "-dlq"
	for key, want := range map[string]string{
		"arn:aws:kms:eu-west-1:123456789012:key/k1": "arn:aws:kms:eu-west-1:123456789012:key/k1",
		"alias/taskiq": "arn:aws:kms:eu-west-1:123456789012:key/* alias/taskiq",
		"1234abcd":     "arn:aws:kms:eu-west-1:123456789012:key/1234abcd",
	} {
		for _, role := range []string{RoleSubmit, RoleWork, RoleAll, RoleInit} {
			p, _, err := IAMPolicy(s, []string{"default"}, role, key)
			if err != nil {
				t.Fatal(err)
			}
			last := p.Statement[len(p.Statement)-1]
			if role == RoleInit {
				if last.Sid == "EncryptionKey" {
					t.Errorf("init was given KMS actions")
				}
				continue
			}
			got := strings.Join(last.Resource, " ")
			if c := last.Condition["ForAnyValue:StringEquals"]["kms:ResourceAliases"]; len(c) > 0 {
				got += " " + c[0]
			}
			if last.Sid != "EncryptionKey" || got != want || strings.Join(last.Action, " ") != "kms:Decrypt kms:GenerateDataKey" {
				t.Errorf("%s with %s: %+v", role, key, last)
			}
		}
	}
}

// A submitter cannot write results or running markers, and a worker cannot
// write task records, groups or cancel markers: the policy follows the key
// layout, and each key a role writes is one of its patterns.
func TestIAMPolicySeparatesRoles(t *testing.T) {
	s := &Settings{QueueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/taskiq", Bucket: "b", Prefix: "p"}
	s.DeadLetterURL = s.QueueURL + "-dlq"
	puts := func(role string) []string {
		p, _, err := IAMPolicy(s, []string{"default"}, role, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, st := range p.Statement {
			if slices.Contains(st.Action, "s3:PutObject") {
				out = append(out, st.Resource...)
			}
		}
		return out
	}
	matches := func(patterns []string, key string) bool {
		// IAM's "*" matches any run of characters, "/" included.
		for _, p := range patterns {
			re := "^" + strings.ReplaceAll(regexp.QuoteMeta(p), `\*`, ".*") + "$"
			if regexp.MustCompile(re).MatchString("arn:aws:s3:::b/" + key) {
				return true
			}
		}
		return false
	}
	k := s3results.Keys{Prefix: "p"}
	submit, work := puts(RoleSubmit), puts(RoleWork)
	for _, key := range []string{k.Task("t1"), k.GroupMember("g", "t1"), k.Cancel("t1"), k.Claim("t1", 1)} {
		if !matches(submit, key) {
			t.Errorf("submit may not write %s", key)
		}
	}
	end, _ := k.GroupEnd(&plan.Result{ID: "t1", Group: "g", State: plan.StateSucceeded, ExitCode: plan.IntPtr(0), Attempt: 1})
	for _, key := range []string{k.Result("t1"), k.Running("t1", 1), k.Attempt("t1", 1), k.Log("t1", 1, "stdout"), k.Worker("w1"), end} {
		if matches(submit, key) {
			t.Errorf("submit may write %s", key)
		}
		if !matches(work, key) {
			t.Errorf("work may not write %s", key)
		}
	}
	for _, key := range []string{k.Task("t1"), k.GroupMember("g", "t1"), k.Cancel("t1")} {
		if matches(work, key) {
			t.Errorf("work may write %s", key)
		}
	}
}
