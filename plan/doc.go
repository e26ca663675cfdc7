// Package plan holds the wire types that every taskiq-go command, the worker
// and the Python integration share: the Task that is submitted, the Result a
// worker records, the running and cancel markers, and the State a task is in.
//
// The types here are plain data with validation. They import nothing of the
// project's and nothing of AWS, so that the JSON they define is the contract
// between the Go binary and any program that drives it.
package plan
