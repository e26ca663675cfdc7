package commands

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// Tables follow gh's habit: on a terminal, aligned columns under a header
// in capitals; otherwise (a pipe, a file) one line per row, fields
// separated by tabs and no header, the stable form for cut and awk. An
// empty field is "-" in both, so that fields never run together. Programs
// use --json.
type table struct {
	w     io.Writer
	tw    *tabwriter.Writer
	human bool
}

// newTable starts a table on w with the given column names; the header
// is printed only on a terminal.
func newTable(w io.Writer, header ...string) *table {
	t := &table{w: w, human: humanTable(w)}
	if t.human {
		t.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		t.row(header...)
	}
	return t
}

// humanTable reports whether a table on w is for a person: w is a
// terminal, or TASKIQ_GO_TERMINAL=1 says so (golden tests cannot give the
// program a terminal).
func humanTable(w io.Writer) bool {
	return os.Getenv("TASKIQ_GO_TERMINAL") == "1" || isTerminal(w)
}

func (t *table) row(fields ...string) {
	for i, f := range fields {
		if f == "" {
			fields[i] = "-"
		} else if t.human {
			// A tab or newline inside a field would break the columns.
			fields[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(f)
		}
	}
	line := strings.Join(fields, "\t") + "\n"
	if t.tw != nil {
		fmt.Fprint(t.tw, line)
		return
	}
	fmt.Fprint(t.w, line)
}

// flush writes the aligned rows out; a no-op off a terminal.
func (t *table) flush() {
	if t.tw != nil {
		_ = t.tw.Flush()
	}
}
