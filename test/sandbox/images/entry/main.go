// krypton-entry: the entrypoint of the sandbox's el and cl images (FROM scratch, so there is no shell).
//
//	krypton-entry <svc> [--init-if-missing <path> -- <init argv…> --] <argv…>
//
// 1. Appends one line to the container-start witness log /var/log/krypton/containers.log (the host's
//    /var/log/krypton is bind-mounted there):  "<unix-seconds.millis> start <svc> <container-id-12>"
//    The container id comes from /proc/self/cgroup (cgroupfs driver: …/<64 hex>); "-" when not found.
//    It stays the same across `docker restart` / `docker compose restart` and changes when compose
//    recreates the container, so tests can tell a restart from a recreate.
// 2. With --init-if-missing: when <path> does not exist, runs <init argv…> to completion first (el: `geth
//    init` of the genesis into an empty datadir); a failing init exits with its status.
// 3. Replaces itself (execve) with <argv…>, so the service is PID 1 and gets docker's signals.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"time"
)

const witness = "/var/log/krypton/containers.log"

var idRe = regexp.MustCompile(`[0-9a-f]{64}`)

func containerID() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "-"
	}
	if m := idRe.FindAll(b, -1); len(m) > 0 {
		return string(m[len(m)-1][:12])
	}
	return "-"
}

func die(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "krypton-entry: "+format+"\n", a...)
	os.Exit(code)
}

func main() {
	args := os.Args[1:]
	if len(args) < 2 {
		die(2, "usage: krypton-entry <svc> [--init-if-missing <path> -- <init argv…> --] <argv…>")
	}
	svc, args := args[0], args[1:]
	now := time.Now()
	line := fmt.Sprintf("%d.%03d start %s %s\n", now.Unix(), now.Nanosecond()/1e6, svc, containerID())
	if f, err := os.OpenFile(witness, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
		_, _ = f.WriteString(line)
		_ = f.Close()
	} else {
		fmt.Fprintf(os.Stderr, "krypton-entry: cannot append to %s: %v\n", witness, err)
	}
	if len(args) >= 3 && args[0] == "--init-if-missing" && args[2] == "--" {
		marker, rest := args[1], args[3:]
		end := -1
		for i, a := range rest {
			if a == "--" {
				end = i
				break
			}
		}
		if end < 1 {
			die(2, "--init-if-missing needs: <path> -- <init argv…> --")
		}
		initArgv, after := rest[:end], rest[end+1:]
		if _, err := os.Stat(marker); os.IsNotExist(err) {
			cmd := exec.Command(initArgv[0], initArgv[1:]...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					die(ee.ExitCode(), "init %v failed: %v", initArgv, err)
				}
				die(1, "init %v: %v", initArgv, err)
			}
		}
		args = after
	}
	if len(args) == 0 {
		die(2, "nothing to run")
	}
	if err := syscall.Exec(args[0], args, os.Environ()); err != nil {
		die(127, "exec %s: %v", args[0], err)
	}
}
