package plan

import (
	"strings"
	"testing"
)

func TestSecretRefs(t *testing.T) {
	for ref, want := range map[string]string{
		"env:DB_PASSWORD":            "",
		"ssm:/prod/db/password":      "",
		"secretsmanager:prod/db":     "",
		"DB_PASSWORD":                "is not SCHEME:NAME",
		"env:":                       "is not SCHEME:NAME",
		"vault:x":                    `unknown scheme "vault"`,
		"ssm:/a\nb":                  "control character",
		"secretsmanager:arn:aws:x:y": "",
	} {
		_, _, err := ParseSecretRef(ref)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("ParseSecretRef(%q) = %v, want %q", ref, err, want)
		}
	}
	task := &Task{Argv: []string{"x"}, Env: map[string]string{"A": "1"}, Secrets: map[string]string{"A": "env:B"}}
	task.Normalize()
	if err := task.Validate(); err == nil || !strings.Contains(err.Error(), "also in env") {
		t.Errorf("secret shadowing env: %v", err)
	}
	task.Secrets = map[string]string{"S": "vault:x"}
	if err := task.Validate(); err == nil || !strings.Contains(err.Error(), `task field "secrets" S: reference has unknown scheme`) {
		t.Errorf("bad ref: %v", err)
	}
}
