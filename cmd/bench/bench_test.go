package main

import (
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSlope(t *testing.T) {
	tests := []struct {
		name   string
		xs, ys []float64
		want   float64
	}{
		{"rising", []float64{0, 1, 2, 3}, []float64{10, 12, 14, 16}, 2},
		{"flat sawtooth", []float64{0, 1, 2, 3, 4, 5}, []float64{0, 100, 0, 100, 0, 100}, 150 / 17.5}, // a small slope, not the 100-step
		{"falling", []float64{1, 2, 3}, []float64{9, 6, 3}, -3},
		{"one point", []float64{1}, []float64{5}, 0},
		{"no spread in x", []float64{2, 2}, []float64{1, 3}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := slope(tt.xs, tt.ys); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("slope = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseLists(t *testing.T) {
	known := []string{"a", "b", "c"}
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"a,c", []string{"a", "c"}, ""},
		{" c , a ,c,", []string{"c", "a"}, ""},
		{"", nil, ""},
		{"a,x", nil, `unknown "x"`},
	}
	for _, tt := range tests {
		got, err := parseList(tt.in, known)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseList(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parseList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if got, err := parseInts("1, 10,500"); err != nil || !slices.Equal(got, []int{1, 10, 500}) {
		t.Errorf("parseInts = %v, %v", got, err)
	}
	for _, bad := range []string{"0", "-1", "x"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q) accepted", bad)
		}
	}
	if got, err := parseDurations("0,100ms,1s"); err != nil || !slices.Equal(got, []Duration{0, Duration(100 * time.Millisecond), Duration(time.Second)}) {
		t.Errorf("parseDurations = %v, %v", got, err)
	}
	if _, err := parseDurations("-1s"); err == nil {
		t.Error("parseDurations accepted a negative duration")
	}
}

func TestEndToEndCountsLostAndLatency(t *testing.T) {
	t0 := time.Unix(1000, 0)
	commits := map[string]time.Time{"a": t0, "b": t0, "c": t0}
	arrived := map[string]time.Time{"a": t0.Add(100 * time.Millisecond), "c": t0.Add(300 * time.Millisecond), "z": t0}
	l, lost := endToEnd(commits, arrived)
	if lost != 1 || l.N != 2 || l.P50 != 100 || l.Max != 300 {
		t.Errorf("endToEnd = %+v, lost %d; want n 2, p50 100, max 300, lost 1", l, lost)
	}
}

func TestReadProcUsageOfSelf(t *testing.T) {
	// Burn some CPU so that the reading cannot be zero.
	x := 0
	for i := range 50_000_000 {
		x ^= i
	}
	u, err := readProcUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.PeakRSSMiB <= 1 || u.PeakRSSMiB > 4096 {
		t.Errorf("peak RSS %.1f MiB, want a plausible size", u.PeakRSSMiB)
	}
	if u.CPUSeconds <= 0 {
		t.Errorf("CPU %.2fs (x=%d), want > 0", u.CPUSeconds, x)
	}
}

func TestEvaluateJudgesTargets(t *testing.T) {
	rep := &Report{Config: Config{BatchSize: 500, BatchWindow: Duration(time.Second)}}
	rep.Summary = []ModeSummary{
		{Mode: ModeTxnFloor, Figures: map[string]Spread{"booking_p50_ms": {Median: 10}, "booking_p99_ms": {Median: 50}, "bookings_per_s": {Median: 200}}},
		{Mode: ModeOutbox, Figures: map[string]Spread{"booking_p50_ms": {Median: 11}, "booking_p99_ms": {Median: 60}}},
		{Mode: ModeSyncDualWrite, Figures: map[string]Spread{"booking_p50_ms": {Median: 260}}},
	}
	rep.Capacity.Drain = &Drain{Events: 1000, EventsPerS: 500, Requests: 3, Relay: procUsage{PeakRSSMiB: 70}}
	rep.Capacity.HalfLoad = &HalfLoad{Events: 100, EndToEnd: Latency{N: 100, P99: 1400}}
	rep.Capacity.Crash = []CrashResult{{Mode: ModeMemoryQueue, Lost: 40}, {Mode: ModeOutbox, Lost: 0}}
	rep.evaluate()
	checkTargets(t, rep, map[string]bool{
		"outbox booking p50 / txn-floor":                                            true,  // 1.10x
		"outbox booking p99 / txn-floor":                                            false, // 1.20x
		"outbox booking p50 / sync-dual-write":                                      true,  // 0.042x
		"end-to-end p99 at half saturation":                                         true,  // 1.4s <= 1.5s
		"backlog drain rate / txn-floor booking rate":                               true,  // 2.5x
		"relay peak RSS draining 1000 events":                                       false, // 70 MiB
		"endpoint requests per event x batch-size (500) draining (relay saturated)": false, // 1.5
		"outbox events lost after SIGKILL":                                          true,
	}) // no saturation ran: none of its targets
}

// checkTargets requires rep's targets to be exactly want's names, each met
// or missed as want says.
func checkTargets(t *testing.T, rep *Report, want map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	for _, tg := range rep.Targets {
		got[tg.Name] = tg.Met
	}
	for name, met := range want {
		if g, ok := got[name]; !ok || g != met {
			t.Errorf("target %q: met=%v (present %v), want %v", name, g, ok, met)
		}
	}
	if len(rep.Targets) != len(want) {
		t.Errorf("%d targets, want %d: %+v", len(rep.Targets), len(want), rep.Targets)
	}
}

// The end-to-end percentiles are of the rows that arrived: with rows lost,
// or none arrived, the target is not met whatever they say.
func TestHalfLoadTargetNeedsEveryRow(t *testing.T) {
	const name = "end-to-end p99 at half saturation"
	tests := []struct {
		name string
		half HalfLoad
		met  bool
	}{
		{"all arrived in time", HalfLoad{Events: 100, EndToEnd: Latency{N: 100, P99: 1400}}, true},
		{"all arrived, too late", HalfLoad{Events: 100, EndToEnd: Latency{N: 100, P99: 1600}}, false},
		{"the fast ones arrived", HalfLoad{Events: 100, Lost: 10, EndToEnd: Latency{N: 90, P99: 1400}}, false},
		{"nothing arrived", HalfLoad{Events: 100, Lost: 100}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := &Report{Config: Config{BatchWindow: Duration(time.Second)}}
			rep.Capacity.HalfLoad = &tt.half
			rep.evaluate()
			checkTargets(t, rep, map[string]bool{name: tt.met})
		})
	}
}

func TestSaturationTargetsJudgeTheHold(t *testing.T) {
	ramp := []Step{
		{Concurrency: 4, BookingsPerS: 300, DeliveredPerS: 250, BacklogSlope: 40, RequestsPerEvt: 0.01},
		{Concurrency: 8, BookingsPerS: 360, DeliveredPerS: 330, BacklogSlope: 30, RequestsPerEvt: 0.004},
	}
	tests := []struct {
		name string
		hold *Step
		want map[string]bool
	}{
		{"no hold: the highest step", nil, map[string]bool{
			"relay delivery / booking rate at saturation (360/s)":          false, // 0.92x
			"backlog growth at saturation, per booking":                    false, // +0.083
			"endpoint requests per event x batch-size (500) at saturation": false, // 2.0
		}},
		{"hold judged, not the ramp", &Step{Concurrency: 8, BookingsPerS: 350, DeliveredPerS: 349, BacklogSlope: 0.5, Requests: 50, RequestsPerEvt: 0.0021}, map[string]bool{
			"relay delivery / booking rate at saturation (350/s)":          true, // 1.00x
			"backlog growth at saturation, per booking":                    true, // +0.001
			"endpoint requests per event x batch-size (500) at saturation": true, // 1.05
		}},
		{"a hold that delivered nothing", &Step{Concurrency: 8, BookingsPerS: 350, BacklogSlope: 350}, map[string]bool{
			"relay delivery / booking rate at saturation (350/s)":          false, // 0x
			"backlog growth at saturation, per booking":                    false, // +1
			"endpoint requests per event x batch-size (500) at saturation": false, // 0 requests: nothing to judge
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{Config: Config{BatchSize: 500}}
			rep.Capacity.Saturation = &Saturation{Steps: ramp, At: 1, Hold: tc.hold}
			rep.evaluate()
			checkTargets(t, rep, tc.want)
		})
	}
}

func TestStepFitSeesThroughBatches(t *testing.T) {
	// Bookings commit steadily; the relay delivers in batches every 1.3 s
	// (window plus endpoint), out of phase with the one-second samples, so
	// a difference of two samples would be off by up to a batch.
	const period = 1.3
	series := func(from, to int, booked, delivered float64) (first, last Sample, between []Sample) {
		at := func(t int) Sample {
			batches := math.Floor((float64(t) - 1) / period)
			c, d := int(booked*float64(t)), int(delivered*period*max(0, batches))
			return Sample{AtS: float64(t), Committed: c, Delivered: d, Backlog: c - d, Requests: int(max(0, batches))}
		}
		for t := from + 1; t < to; t++ {
			between = append(between, at(t))
		}
		return at(from), at(to), between
	}
	tests := []struct {
		name                string
		from, to            int
		booked, delivered   float64
		wantSlope, slopeTol float64
		rateTol             float64
	}{
		{name: "keeping up", from: 10, to: 70, booked: 300, delivered: 300, wantSlope: 0, slopeTol: 3, rateTol: 0.01},
		{name: "falling behind", from: 10, to: 70, booked: 300, delivered: 250, wantSlope: 50, slopeTol: 3, rateTol: 0.01},
		// Two points: the plain difference, which a batch can swing.
		{name: "too short to fit", from: 10, to: 12, booked: 300, delivered: 300, wantSlope: 0, slopeTol: 400, rateTol: 0.7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, last, between := series(tc.from, tc.to, tc.booked, tc.delivered)
			var st Step
			st.fit(first, last, between, time.Duration(tc.to-tc.from)*time.Second)
			if math.Abs(st.DeliveredPerS-tc.delivered) > tc.rateTol*tc.delivered {
				t.Errorf("delivered/s = %.1f, want %.0f", st.DeliveredPerS, tc.delivered)
			}
			if math.Abs(st.BacklogSlope-tc.wantSlope) > tc.slopeTol {
				t.Errorf("backlog slope = %+.2f/s, want %+.0f", st.BacklogSlope, tc.wantSlope)
			}
			if limit := int(tc.booked*(1+2*period)) + int((tc.booked-tc.delivered)*float64(tc.to)); st.BacklogMax <= 0 || st.BacklogMax > limit {
				t.Errorf("backlog max = %d, want in (0, %d]", st.BacklogMax, limit)
			}
			if want := 1 / (tc.delivered * period); len(between) > 1 && math.Abs(st.RequestsPerEvt-want) > 0.02*want {
				t.Errorf("requests/event = %.5f, want %.5f (one per batch)", st.RequestsPerEvt, want)
			}
		})
	}
}

func TestJSONArray(t *testing.T) {
	tests := []struct {
		rows []string
		want string
	}{
		{nil, `[]`},
		{[]string{`{"a":1}`}, `[{"a":1}]`},
		{[]string{`{"a":1}`, `{"b":2}`, `{}`}, `[{"a":1},{"b":2},{}]`},
	}
	for _, tc := range tests {
		var rows [][]byte
		for _, r := range tc.rows {
			rows = append(rows, []byte(r))
		}
		if got := string(jsonArray(rows)); got != tc.want {
			t.Errorf("jsonArray(%q) = %s, want %s", tc.rows, got, tc.want)
		}
	}
}

// Only rows the endpoint accepted have arrived: a refused POST (here one
// whose row lacks an exact event_id) counts for neither delivery nor the
// end-to-end latency, so a refusal shows up as lost.
func TestSinkNotesOnlyAcceptedRows(t *testing.T) {
	sk, err := startSink(0)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.close()
	for body, want := range map[string]int{
		`[{"Event_ID":"refused"}]`:                    http.StatusBadRequest,
		`[{"event_id":"ok"}]`:                         http.StatusOK,
		`[{"event_id":"half"},{"event_id":""}]`:       http.StatusBadRequest,
		`{"rows":[{"event_id":"wrapped","x":1}]}`:     http.StatusOK,
		`[{"event_id":"ok"},{"event_id":"ok-again"}]`: http.StatusOK,
	} {
		resp, err := http.Post(sk.url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %s: %d, want %d", body, resp.StatusCode, want)
		}
	}
	got := slices.Sorted(maps.Keys(sk.arrivals()))
	if want := []string{"ok", "ok-again", "wrapped"}; !slices.Equal(got, want) {
		t.Fatalf("arrived %v, want %v", got, want)
	}
	if n := sk.posts(); n != 5 {
		t.Fatalf("posts %d, want 5 (accepted or not)", n)
	}
}

// A POST counts as a request when its rows count as received, once the
// endpoint has answered: requests per event over a window must not hold a
// request without its rows (the endpoint's own count moves before its
// latency).
func TestSinkCountsARequestWithItsRows(t *testing.T) {
	sk, err := startSink(300 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.close()
	done := make(chan error, 1)
	go func() {
		resp, err := http.Post(sk.url, "application/json", strings.NewReader(`[{"event_id":"e1"}]`))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	for sk.srv.Stats().Requests == 0 { // the endpoint has it, and waits
		time.Sleep(5 * time.Millisecond)
	}
	if p, r := sk.posts(), sk.received(); p != 0 || r != 0 {
		t.Fatalf("before the answer: %d posts, %d rows; want neither", p, r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p, r := sk.posts(), sk.received(); p != 1 || r != 1 {
		t.Fatalf("after the answer: %d posts, %d rows; want 1 and 1", p, r)
	}
}

func TestProblemsFlagWhatMustNeverHappen(t *testing.T) {
	tests := []struct {
		name     string
		run      Result
		capacity Capacity
		want     int
	}{
		{"clean outbox", Result{Mode: ModeOutbox}, Capacity{}, 0},
		{"booking errors", Result{Mode: ModeTxnFloor, Errors: 2, FirstErr: "boom"}, Capacity{}, 1},
		{"outbox lost an event", Result{Mode: ModeOutbox, Lost: 1}, Capacity{}, 1},
		{"memory-queue loses by design", Result{Mode: ModeMemoryQueue, Lost: 5, AnalyticsErrors: 5}, Capacity{}, 0},
		{"sync-dual-write POST failed", Result{Mode: ModeSyncDualWrite, AnalyticsErrors: 1}, Capacity{}, 0},
		{"txn-floor-marks left events unmarked", Result{Mode: ModeTxnFloorMarks, AnalyticsErrors: 3}, Capacity{}, 1},
		{"booking errors at half saturation", Result{Mode: ModeOutbox}, Capacity{HalfLoad: &HalfLoad{Errors: 1}}, 1},
		{"booking errors in the sweep", Result{Mode: ModeOutbox}, Capacity{Sweep: []SweepPoint{{BatchSize: 10, Errors: 3}}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := &Report{Runs: []Result{tt.run}, Capacity: tt.capacity}
			if got := rep.problems(); len(got) != tt.want {
				t.Errorf("problems() = %q, want %d", got, tt.want)
			}
		})
	}
}
