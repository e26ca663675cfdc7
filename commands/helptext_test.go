package commands

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
)

// Every command's --help has examples, names each flag's value (no
// urfave "value" placeholder) and writes duration defaults as people do.
func TestHelpTexts(t *testing.T) {
	var paths [][]string
	var out bytes.Buffer
	run([]string{"taskiq-go", "--help"}, strings.NewReader(""), &out, io.Discard)
	for _, c := range []string{"submit", "poll", "tasks", "result", "logs", "cancel", "serve", "work", "queues", "workers",
		"init", "dlq", "dev", "keygen", "completion", "man", "ui", "version"} {
		if !strings.Contains(out.String(), "   "+c) {
			t.Errorf("taskiq-go --help does not list %s", c)
		}
		paths = append(paths, []string{c})
	}
	paths = append(paths, []string{"dlq", "list"}, []string{"dlq", "redrive"})
	placeholder := regexp.MustCompile(`--[a-z-]+ value\b`)
	badDefault := regexp.MustCompile(`default: [0-9hm]+m0s\)`)
	for _, p := range paths {
		var help bytes.Buffer
		run(append(append([]string{"taskiq-go"}, p...), "--help"), strings.NewReader(""), &help, io.Discard)
		h, name := help.String(), strings.Join(p, " ")
		if !strings.Contains(h, "   taskiq-go "+p[0]) || !strings.Contains(h, "\n   taskiq-go ") {
			t.Errorf("%s --help has no example:\n%s", name, h)
		}
		if placeholder.MatchString(h) {
			t.Errorf("%s --help shows a flag value as \"value\":\n%s", name, h)
		}
		if m := badDefault.FindString(h); m != "" {
			t.Errorf("%s --help writes a default as %s", name, m)
		}
	}
	var work bytes.Buffer
	run([]string{"taskiq-go", "work", "--help"}, strings.NewReader(""), &work, io.Discard)
	if !strings.Contains(work.String(), "(default: number of CPUs)") {
		t.Errorf("work --help does not say the concurrency is the number of CPUs:\n%s", work.String())
	}
}
