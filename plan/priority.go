package plan

// Band is one priority band: SQS has no message priority, so each band of a
// logical queue is its own SQS queue, and workers take from the highest
// non-empty band first.
type Band struct {
	// Name is the band's name in logs and in `taskiq-go queues`.
	Name string
	// Suffix is appended to the logical queue's SQS URL; the normal band has
	// none, so a deployment without priorities uses just the one queue.
	Suffix string
	// Min and Max bound the task priorities that go to the band.
	Min, Max int
}

// Bands are the priority bands, highest first. The mapping is fixed so that
// every producer and worker agrees on it without configuration:
//
//	priority >= 10      highest  (-p2)
//	1 .. 9              high     (-p1)
//	0                   normal   (no suffix)
//	-9 .. -1            low      (-n1)
//	priority <= -10     lowest   (-n2)
var Bands = []Band{
	{Name: "highest", Suffix: "-p2", Min: 10, Max: MaxPriority},
	{Name: "high", Suffix: "-p1", Min: 1, Max: 9},
	{Name: "normal", Suffix: "", Min: 0, Max: 0},
	{Name: "low", Suffix: "-n1", Min: -9, Max: -1},
	{Name: "lowest", Suffix: "-n2", Min: MinPriority, Max: -10},
}

// BandFor returns the band a task of the given priority goes to.
func BandFor(priority int) Band {
	for _, b := range Bands {
		if priority >= b.Min && priority <= b.Max {
			return b
		}
	}
	if priority > 0 {
		return Bands[0]
	}
	return Bands[len(Bands)-1]
}
