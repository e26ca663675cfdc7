package s3results

import (
	"strings"
	"testing"
	"time"
)

func TestKeyLayout(t *testing.T) {
	for _, tc := range []struct {
		prefix, got, want string
	}{
		{"taskiq", Keys{"taskiq"}.Task("a1"), "taskiq/tasks/a1/task.json"},
		{"taskiq/", Keys{"taskiq/"}.Result("a1"), "taskiq/tasks/a1/result.json"},
		{"", Keys{""}.Running("a1", 2), "tasks/a1/running/0002.json"},
		{"p/q", Keys{"p/q"}.Cancel("a1"), "p/q/tasks/a1/cancel.json"},
		{"p", Keys{"p"}.Claim("a1", 3), "p/tasks/a1/claims/0003"},
		{"p", Keys{"p"}.Attempt("a1", 12), "p/tasks/a1/attempts/0012.json"},
		{"p", Keys{"p"}.Log("a1", 2, "stdout"), "p/tasks/a1/logs/0002/stdout"},
		{"p", Keys{"p"}.TaskDir("a1"), "p/tasks/a1/"},
		{"p", Keys{"p"}.GroupDir("run-7"), "p/groups/run-7/"},
		{"p", Keys{"p"}.GroupMember("run-7", "a1"), "p/groups/run-7/a1"},
		{"p", Keys{"p"}.GroupEndDir("run-7"), "p/group-ends/run-7/"},
		{"p", Keys{"p"}.Worker("w1"), "p/workers/w1.json"},
		{"", Keys{""}.WorkerDir(), "workers/"},
		{"p/q/", Keys{"p/q/"}.Root(), "p/q/"},
		{"p", Keys{"p"}.Root(), "p/"},
		{"", Keys{""}.Root(), ""},
	} {
		if tc.got != tc.want {
			t.Errorf("prefix %q: got %q, want %q", tc.prefix, tc.got, tc.want)
		}
	}
}

// Every per-task key must sit under TaskDir, or one LIST would miss it.
func TestTaskKeysUnderTaskDir(t *testing.T) {
	k := Keys{"x"}
	dir := k.TaskDir("id")
	if root := k.Root(); dir[:len(root)] != root {
		t.Errorf("%s is not under %s", dir, root)
	}
	for _, key := range []string{k.Task("id"), k.Running("id", 1), k.Cancel("id"), k.Result("id"),
		k.Claim("id", 1), k.Attempt("id", 1), k.Log("id", 1, "stderr")} {
		if len(key) <= len(dir) || key[:len(dir)] != dir {
			t.Errorf("%s is not under %s", key, dir)
		}
	}
}

// A cancel notice names its task and time, and newer notices sort first.
func TestCancelNoticeKeys(t *testing.T) {
	k := Keys{"p"}
	t1 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a, b := k.CancelNotice("task-1", t1), k.CancelNotice("x", t1.Add(time.Millisecond))
	if !strings.HasPrefix(a, "p/cancels/") || b >= a {
		t.Fatalf("keys %q and %q: want under p/cancels/, newest first", a, b)
	}
	at, id, ok := k.cancelNotice(a)
	if !ok || id != "task-1" || !at.Equal(t1) {
		t.Fatalf("cancelNotice(%q) = %v, %q, %v", a, at, id, ok)
	}
}
