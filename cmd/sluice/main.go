// Command sluice is the one sluice binary: `sluice up` runs the whole system
// in one process; the other subcommands are clients of its HTTP API.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
)

const usage = `sluice: streams in, functions on them, Parquet out, SQL over it.

Usage:
  sluice up [--data DIR] [--listen ADDR] [--kafka-listen ADDR] [--allow-exec] [--auth on|off]
      run everything in one process on embedded defaults
  sluice serve --brokers HOST:PORT[,...] [--roles ingest,worker,query] [--storage DIR|s3://...]
             [--worker-id ID] [--listen ADDR] [--data DIR]
      run chosen roles against an external Kafka cluster; start as many workers as needed
  sluice put STREAM [FILE|-] [--progress] [--server URL]
      send NDJSON records (one JSON value per line) to a stream; progress on stderr on a terminal
  sluice sql [--format table|json|csv] [--server URL] "SQL"
  sluice sql --async "SQL"            (prints the async query's record: its id and state)
  sluice query get ID | cancel ID | list [--limit N]
  sluice query results ID [--format csv|parquet|ndjson|arrow|json] [--output FILE]   (waits for the query)
      run a query and print the rows
  sluice stream create NAME [--partitions N] [--retention DUR]
  sluice table create NAME --schema FILE [--file-age DUR]
  sluice pipeline create NAME --stream S [--function F[:QUALIFIER]] --table T
                  [--batch-size N] [--batch-window DUR]
  sluice pipeline status|pause|resume NAME   (status: -o table|wide|json|yaml)
  sluice fn deploy NAME --runtime wasm|exec --code PATH [--memory SIZE] [--timeout DUR] [--env K=V ...]
  sluice fn publish NAME
  sluice fn alias NAME ALIAS --version N
  sluice fn logs NAME [--limit N] [--follow]   (one JSON object per line)
  sluice stream|table|pipeline|fn list [-o table|wide|json|yaml] | show NAME [-o json|yaml]
  sluice key create --scope admin|ingest:STREAM|query:TABLE [--scope ...] [--name N] [--expires DUR|TIME]
  sluice key limits ID [--ingest-rps N] [--ingest-bytes-per-sec SIZE] [--queries-per-minute N]
  sluice version
  sluice completion bash|zsh          (source <(sluice completion bash): complete commands and flags)
  sluice key list | revoke ID | id    (id: the ID of the CLI's key, its Postgres/Kafka user name)

Client commands talk to --server (default $SLUICE_SERVER, else http://127.0.0.1:8080)
with the API key --key (default $SLUICE_KEY, else the file ./sluice-data/admin.key that
sluice up writes on first start; $SLUICE_DATA changes ./sluice-data).
Run "sluice COMMAND -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmds := commands()
	name, args := os.Args[1], os.Args[2:]
	if name == "-h" || name == "--help" || name == "help" {
		fmt.Print(usage)
		return
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "sluice: unknown command %q\n\n%s", name, usage)
		os.Exit(2)
	}
	if err := cmd(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h printed the command's usage
		}
		fmt.Fprintf(os.Stderr, "sluice %s: %v\n", name, err)
		os.Exit(1)
	}
}

// commands is the table of sluice's commands; `sluice completion` reads
// their verbs and flags from it.
func commands() map[string]func([]string) error {
	return map[string]func([]string) error{
		"up":         runUp,
		"serve":      runServe,
		"put":        runPut,
		"sql":        runSQL,
		"query":      queryCommands(),
		"stream":     streamCommands(),
		"table":      tableCommands(),
		"pipeline":   pipelineCommands(),
		"fn":         fnCommands(),
		"key":        keyCommands(),
		"version":    runVersion,
		"completion": runCompletion,
	}
}

// version is set at build time (-ldflags "-X main.version=v1.2.3"); else
// the module version or VCS revision from the build info is printed.
var version = ""

func runVersion(args []string) error {
	if err := parseFlags(flag.NewFlagSet("version", flag.ContinueOnError), args); err != nil {
		return err
	}
	v := version
	info, ok := debug.ReadBuildInfo()
	if v == "" && ok {
		v = info.Main.Version
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
				v = "devel " + s.Value
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	goVersion := ""
	if ok {
		goVersion = " " + info.GoVersion
	}
	fmt.Printf("sluice %s%s\n", v, goVersion)
	return nil
}
