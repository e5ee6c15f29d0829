package endpoint

import (
	"testing"
	"time"

	"github.com/ddboutbox/ddboutbox/relay"
)

func requestsAt(offsetsMS ...int) []Request {
	base := time.Unix(1_700_000_000, 0)
	reqs := make([]Request, len(offsetsMS))
	for i, ms := range offsetsMS {
		reqs[i] = Request{At: base.Add(time.Duration(ms) * time.Millisecond)}
	}
	return reqs
}

func TestCheckPacing(t *testing.T) {
	fivePerSecond := relay.Profile{Name: "t", RequestsPerSecond: 5, Burst: 1}
	tests := []struct {
		name      string
		p         relay.Profile
		at        []int
		tolerance time.Duration
		ok        bool
	}{
		{"none", fivePerSecond, nil, 0, true},
		{"evenly paced", fivePerSecond, []int{0, 200, 400, 600, 800, 1000}, 0, true},
		{"slower is fine", fivePerSecond, []int{0, 500, 5000}, 0, true},
		{"unsorted input", fivePerSecond, []int{400, 0, 200}, 0, true},
		{"one too soon", fivePerSecond, []int{0, 200, 390}, 0, false},
		{"one too soon, within tolerance", fivePerSecond, []int{0, 200, 390}, 10 * time.Millisecond, true},
		{"tolerance does not allow a sustained excess", fivePerSecond, []int{0, 190, 380, 570, 760, 950, 1140}, 50 * time.Millisecond, false},
		{"back to back", fivePerSecond, []int{0, 0}, 0, false},
		{"burst 3", relay.Profile{RequestsPerSecond: 5, Burst: 3}, []int{0, 0, 0, 200}, 0, true},
		{"burst 3 exceeded", relay.Profile{RequestsPerSecond: 5, Burst: 3}, []int{0, 0, 0, 0}, 0, false},
		{"no rate", relay.Profile{}, []int{0, 0, 0, 0}, 0, true},
	}
	for _, tt := range tests {
		err := CheckPacing(requestsAt(tt.at...), tt.p, tt.tolerance)
		if (err == nil) != tt.ok {
			t.Errorf("%s: CheckPacing = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestMaxInWindow(t *testing.T) {
	tests := []struct {
		at   []int
		w    time.Duration
		want int
	}{
		{nil, time.Second, 0},
		{[]int{0}, time.Second, 1},
		{[]int{0, 200, 400, 600, 800, 1000}, time.Second, 5}, // [t, t+1s) is half-open
		{[]int{0, 200, 400, 600, 800, 999}, time.Second, 6},
		{[]int{1000, 0, 999, 1}, time.Second, 3},
		{[]int{0, 0, 0}, time.Millisecond, 3},
	}
	for _, tt := range tests {
		if got := MaxInWindow(requestsAt(tt.at...), tt.w); got != tt.want {
			t.Errorf("MaxInWindow(%v, %v) = %d, want %d", tt.at, tt.w, got, tt.want)
		}
	}
}
