// Command taskiq-go runs commands as tasks on workers fed by AWS SQS, with
// results in S3. See the commands package.
package main

import (
	"os"

	"github.com/taskiq-go/taskiq-go/commands"
)

func main() { os.Exit(commands.Main(os.Args)) }
