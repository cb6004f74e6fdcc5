#!/usr/bin/env python3
"""Runs a command under a pseudo-terminal (as an operator's terminal would), and presses Ctrl-C once its output
(ANSI escapes stripped) contains a trigger text; then reads the output to the end. Prints one JSON object:
{"code": exit code (or 128+signal), "sent": whether Ctrl-C was sent, "output": the output, ANSI stripped}.
Usage: pty-run.py <trigger> <timeout seconds> -- <argv...>
"""
import fcntl, json, os, pty, re, select, struct, sys, termios, time

ANSI = re.compile(rb'\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r')

def main():
    trigger, timeout = sys.argv[1].encode(), float(sys.argv[2])
    argv = sys.argv[sys.argv.index('--') + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        # A terminal of 50 rows x 160 columns (a fresh pty is 0 x 0, and a display would wrap every character).
        fcntl.ioctl(sys.stdout.fileno(), termios.TIOCSWINSZ, struct.pack('HHHH', 50, 160, 0, 0))
        os.execvp(argv[0], argv)
    buf, sent, deadline = b'', False, time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if fd in r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        if not sent and trigger in ANSI.sub(b'', buf):
            os.write(fd, b'\x03')  # the terminal's line discipline turns it into SIGINT for the foreground group
            sent = True
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    print(json.dumps({'code': code, 'sent': sent, 'output': ANSI.sub(b'', buf).decode('utf-8', 'replace')}))

main()
