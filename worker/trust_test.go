package worker

import (
	"errors"
	"slices"
	"testing"
)

func TestTaskEnviron(t *testing.T) {
	workerEnv := []string{
		"PATH=/usr/bin", "HOME=/root", "LC_ALL=C.UTF-8", "TZ=UTC",
		"AWS_SECRET_ACCESS_KEY=secret", "AWS_ACCESS_KEY_ID=id", "TASKIQ_GO_SIGNING_KEY=/k",
		"DAGSTER_HOME=/d", "DAGSTER_X=1", "PYTHONPATH=/p", "malformed",
	}
	got := TaskEnviron(workerEnv, []string{"DAGSTER_*"}, map[string]string{"MINE": "1", "PATH": "/task/bin"})
	want := []string{"DAGSTER_HOME=/d", "DAGSTER_X=1", "HOME=/root", "LC_ALL=C.UTF-8", "MINE=1", "PATH=/task/bin", "TZ=UTC"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	// Named explicitly, a credential passes: it is the operator's choice.
	got = TaskEnviron(workerEnv, []string{"AWS_ACCESS_KEY_ID"}, nil)
	if !slices.Contains(got, "AWS_ACCESS_KEY_ID=id") || slices.Contains(got, "AWS_SECRET_ACCESS_KEY=secret") {
		t.Errorf("explicit pass: %q", got)
	}
}

func TestCheckAllowed(t *testing.T) {
	look := func(name string) (string, error) {
		switch name {
		case "python3":
			return "/usr/bin/python3", nil
		case "dagster":
			return "/venv/bin/dagster", nil
		}
		return "", errors.New("not found")
	}
	cases := []struct {
		argv0    string
		patterns []string
		ok       bool
	}{
		{"anything", nil, true},
		{"python3", []string{"python*"}, true},
		{"python3", []string{"/usr/bin/python3"}, true},
		{"/usr/bin/python3", []string{"python3"}, true},
		{"dagster", []string{"/venv/bin/*"}, true},
		{"sh", []string{"python*", "/venv/bin/*"}, false},
		{"/tmp/evil/python3", []string{"/usr/bin/python3"}, false},
		{"../venv/bin/dagster", []string{"/venv/bin/*"}, false},
	}
	for _, c := range cases {
		err := CheckAllowed(c.argv0, c.patterns, look)
		if (err == nil) != c.ok {
			t.Errorf("CheckAllowed(%q, %q) = %v, want ok=%v", c.argv0, c.patterns, err, c.ok)
		}
		var na *ErrNotAllowed
		if err != nil && (!errors.As(err, &na) || na.Error() != "command "+c.argv0+" is not allowed on this worker") {
			t.Errorf("error %v", err)
		}
	}
}
