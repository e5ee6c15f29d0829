package relay

import (
	"os"
	"os/exec"
	"testing"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

func TestProcessGone(t *testing.T) {
	ended := exec.Command("true")
	if err := ended.Run(); err != nil {
		t.Fatal(err)
	}
	self := thisProcess()
	if self.Instance == "" || self.PID != os.Getpid() || self.BootID == "" {
		t.Fatalf("thisProcess: %+v", self)
	}
	other := func(edit func(*dynamo.Process)) dynamo.Process {
		p := self
		p.Instance = "earlier"
		edit(&p)
		return p
	}
	for _, tc := range []struct {
		name string
		p    dynamo.Process
		want bool
	}{
		{"ended here", other(func(p *dynamo.Process) { p.PID = ended.Process.Pid }), true},
		{"alive here", other(func(p *dynamo.Process) { p.PID = os.Getppid() }), false},
		{"this very process", other(func(*dynamo.Process) {}), false},
		{"another host", other(func(p *dynamo.Process) { p.PID = ended.Process.Pid; p.Host += "-b" }), false},
		{"another pid namespace", other(func(p *dynamo.Process) { p.PID = ended.Process.Pid; p.PIDNamespace = "pid:[1]" }), false},
		// Same hostname, both in their host's initial pid namespace: the
		// namespace ids match, the machines do not.
		{"another machine", other(func(p *dynamo.Process) { p.PID = ended.Process.Pid; p.BootID = "another-boot" }), false},
		{"no boot id recorded (an older relay)", other(func(p *dynamo.Process) { p.PID = ended.Process.Pid; p.BootID = "" }), false},
		{"no pid recorded", other(func(p *dynamo.Process) { p.PID = 0 }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := processGone(self, tc.p); got != tc.want {
				t.Fatalf("processGone(%+v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}
