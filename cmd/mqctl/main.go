// Command mqctl is an operations toolkit for RabbitMQ.
package main

import (
	"os"

	"github.com/mqctl/mqctl/internal/cli"
)

func main() { os.Exit(cli.Main()) }
