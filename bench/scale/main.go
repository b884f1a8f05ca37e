// Command scale measures how mqctl's main jobs grow with their size: each
// run prepares one job at one size on a broker (bench/scale.sh gives it a
// fresh private node every time), runs the mqctl commands of that job as
// an operator would and appends one row per command to a CSV file: wall
// time, mqctl's CPU (user+sys) and peak RSS, and the broker's CPU over the
// same interval, with each figure also per item (queue, work queue or dead
// letter), so a reader sees at once whether the cost of one item grows.
//
//	scale run -job backlog|topology|dlq -size N -csv FILE [-runs R] …
//	scale plot -csv FILE -dir DIR [-cmd "the command line"]
//
// `plot` turns the CSV into DIR/scale.md (the table), DIR/scale.json and
// PNG charts (DIR/<job>-time.png, -cpu.png, -rss.png).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: scale run|plot [flags]; see bench/scale.sh")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runMain(os.Args[2:])
	case "plot":
		err = plotMain(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q: want run or plot", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}
