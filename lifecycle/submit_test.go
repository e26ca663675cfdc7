package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/taskiq-go/taskiq-go/internal/testbroker"
	"github.com/taskiq-go/taskiq-go/lifecycle"
)

// A membership written beside a record that is then refused is taken back,
// unless the task already recorded under the id is of the same group.
func TestRecordTakesBackTheMembershipOfARefusedTask(t *testing.T) {
	ctx := context.Background()
	st := testbroker.NewStore()
	submit(t, st, task("a")) // group g
	other := task("a")
	other.Group = "h"
	if _, _, err := lifecycle.Record(ctx, st, other); !errors.Is(err, lifecycle.ErrConflict) {
		t.Fatalf("resubmit in another group = %v, want ErrConflict", err)
	}
	if m := st.Members("h"); len(m) != 0 {
		t.Errorf("group h has %v after a refused submit, want none", m)
	}
	sameGroup := task("a")
	sameGroup.Argv = []string{"echo", "second"}
	if _, _, err := lifecycle.Record(ctx, st, sameGroup); !errors.Is(err, lifecycle.ErrConflict) {
		t.Fatalf("different resubmit = %v, want ErrConflict", err)
	}
	if m := st.Members("g"); !slices.Equal(m, []string{"a"}) {
		t.Errorf("group g = %v after a refused resubmit in it, want [a] (the first submit's)", m)
	}
}

// A record that cannot be written leaves no membership behind, and a
// membership that cannot be written fails the submit.
func TestRecordFailuresLeaveNoMembership(t *testing.T) {
	ctx := context.Background()
	st := testbroker.NewStore()
	boom := errors.New("boom")
	st.FailNext("put_task", boom)
	if _, _, err := lifecycle.Record(ctx, st, task("a")); !errors.Is(err, boom) {
		t.Fatalf("Record with the record's write failing = %v, want boom", err)
	}
	if m := st.Members("g"); len(m) != 0 {
		t.Errorf("group g = %v after a failed record, want none", m)
	}
	st.FailNext("add_to_group", boom)
	if send, created, err := lifecycle.Record(ctx, st, task("b")); !errors.Is(err, boom) || send || !created {
		t.Fatalf("Record with the membership failing = %v, %v, %v; want not sent, created, boom", send, created, err)
	}
}
