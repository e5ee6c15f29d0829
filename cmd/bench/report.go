package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what the bench prints and writes as JSON.
type Report struct {
	StartedAt time.Time         `json:"started_at"`
	Config    Config            `json:"config"`
	Host      map[string]string `json:"host"`
	// Methods says how each figure is measured.
	Methods map[string]string `json:"methods"`
	// Runs are every mode in every round, in the order they ran.
	Runs []Result `json:"runs"`
	// Summary is, per mode, the median and range of each figure over the
	// rounds.
	Summary []ModeSummary `json:"summary"`
	// Ratios compare each mode's medians with a baseline mode's.
	Ratios []RatioRow `json:"ratios"`
	// Capacity is what the relay capacity scenarios measured.
	Capacity Capacity `json:"capacity"`
	// Targets are issue #5's targets against the figures above.
	Targets []Target `json:"targets"`
}

// Target is one target and whether this run met it.
type Target struct {
	Name     string `json:"name"`
	Want     string `json:"want"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// ModeSummary is one mode's figures over the rounds.
type ModeSummary struct {
	Mode    string            `json:"mode"`
	Figures map[string]Spread `json:"figures"`
}

// RatioRow is one mode against one baseline: mode's median / baseline's.
type RatioRow struct {
	Mode     string   `json:"mode"`
	Baseline string   `json:"baseline"`
	Figures  []string `json:"figures"`
	Values   []JSONF  `json:"values"`
}

// JSONF is a float that marshals NaN as null.
type JSONF float64

// MarshalJSON implements json.Marshaler.
func (f JSONF) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(math.Round(float64(f)*1000) / 1000)
}

// figure is one reported number of a Result.
type figure struct {
	key, label string
	// analytics: only for modes that deliver events.
	analytics bool
	get       func(Result) float64
	format    string
}

var figures = []figure{
	{"bookings_per_s", "bookings/s", false, func(r Result) float64 { return r.PerSecond }, "%.1f"},
	{"booking_p50_ms", "booking p50 ms", false, func(r Result) float64 { return r.Booking.P50 }, "%.1f"},
	{"booking_p95_ms", "booking p95 ms", false, func(r Result) float64 { return r.Booking.P95 }, "%.1f"},
	{"booking_p99_ms", "booking p99 ms", false, func(r Result) float64 { return r.Booking.P99 }, "%.1f"},
	{"booking_max_ms", "booking max ms", false, func(r Result) float64 { return r.Booking.Max }, "%.1f"},
	{"e2e_p50_ms", "e2e p50 ms", true, func(r Result) float64 { return r.EndToEnd.P50 }, "%.0f"},
	{"e2e_p95_ms", "e2e p95 ms", true, func(r Result) float64 { return r.EndToEnd.P95 }, "%.0f"},
	{"e2e_p99_ms", "e2e p99 ms", true, func(r Result) float64 { return r.EndToEnd.P99 }, "%.0f"},
	{"endpoint_requests_per_1000_events", "endpoint req/1k events", true, func(r Result) float64 { return r.EndpointRequestsPer1k }, "%.1f"},
	{"ddb_write_requests_per_event", "DDB write req/event", false, func(r Result) float64 { return r.WritesPerEvent }, "%.3f"},
	{"ddb_write_items_per_event", "DDB write items/event", false, func(r Result) float64 { return r.WriteItemsPerEvent }, "%.3f"},
	{"drain_s", "done after last booking s", false, func(r Result) float64 { return orNaN(r.DrainS) }, "%.2f"},
	{"ddb_local_cpu_ms_per_booking", "DynamoDB Local CPU ms/booking", false, func(r Result) float64 { return orNaN(r.EmulatorCPUMs) }, "%.2f"},
	{"lost", "events lost", true, func(r Result) float64 { return float64(r.Lost) }, "%.0f"},
	{"duplicates", "duplicates", true, func(r Result) float64 { return float64(r.Duplicates) }, "%.0f"},
	{"errors", "booking errors", false, func(r Result) float64 { return float64(r.Errors) }, "%.0f"},
}

// orNaN is v, or NaN (not measured) when v is 0.
func orNaN(v float64) float64 {
	if v == 0 {
		return math.NaN()
	}
	return v
}

// ratioFigures are compared against the baselines.
var ratioFigures = []string{"bookings_per_s", "booking_p50_ms", "booking_p99_ms"}

// baselines are the modes every mode is compared with.
var baselines = []string{ModePutOnly, ModeTxnFloor, ModeTxnFloorMarks, ModeSyncDualWrite}

func methods() map[string]string {
	return map[string]string{
		"rounds":             "the modes run in several rounds, in an order rotated by one each round; each figure is the median over the rounds, with min and max",
		"dynamodb":           "every mode run and every scenario gets a fresh DynamoDB Local container (testcontainers-go, -inMemory -sharedDb), warmed up with -warm-up two-item transactions on a table without a stream, and each mode then runs unmeasured for -mode-warm-up (its endpoint requests and duplicates subtracted) so that the JVM has compiled the operations the mode uses: DynamoDB Local slows down as stream records pile up (writes to a second stream-enabled table fall to ~40 items/s once another stream holds ~100,000 records), so a shared instance would make each figure depend on what ran before it",
		"booking-http":       "cmd/booking as a separate process (built by the bench), POST /bookings over loopback from the same closed-loop workers; it talks to DynamoDB through its own counting proxy (one more loopback hop), which counts its write requests and the items they write; the relay delivers",
		"saturation":         "outbox bookings closed loop at concurrency 1, 2, 4, ... for -saturation-step each, with the relay running on the same DynamoDB Local, until the booking rate rose less than 5% twice; committed and delivered counts sampled every second; delivered/s and backlog growth are least-squares slopes over the step's samples. Then, once the backlog is empty, the concurrency of the highest step runs again for -saturation-hold (the hold): its booking rate is the saturated rate, and its delivered/s, backlog growth and endpoint requests per event, fitted to the samples from batch window + endpoint latency + 1s after its start (the pipeline filling), are what the targets judge",
		"half_saturation":    "open loop at half the hold's booking rate for -saturation-step, same relay; end-to-end latency as for the modes",
		"drain":              "-drain-events BookingReserved items written with BatchWriteItem (the items outbox.Writer stores) while no relay runs; then the relay starts; drain time is relay start to every event counted DELIVERED in its /metrics; peak RSS is the relay's VmHWM from /proc",
		"sweep":              "one DynamoDB Local; per batch size and window a relay is started, bookings are offered open loop at -sweep-rate for -sweep-duration, and its end-to-end p99 and endpoint requests per event are taken after every event arrived; window 0 runs the relay with -batch-window 1ms",
		"crash":              "the bench re-executes itself as a child process making -crash-bookings bookings (memory-queue or outbox) and printing each acknowledged commit; at half of them the child (and, for outbox, the relay) gets SIGKILL; the outbox relay is then restarted; lost = acknowledged commits whose row never arrived",
		"bookings_per_s":     "committed bookings / wall time from the first booking started to the last one answered, Concurrency closed-loop workers",
		"booking_latency":    "time of one booking as its handler would see it: building the items and event, the DynamoDB write(s) and, for sync-dual-write, the POST; nearest-rank percentiles",
		"end_to_end_latency": "commit acknowledged to the handler -> arrival of the first POST carrying the row that the local endpoint accepted (the instant the request came in, before the endpoint's latency; a refused POST does not count); nearest-rank percentiles",
		"endpoint_requests":  "POSTs the endpoint received (accepted or not) per 1,000 committed events",
		"ddb_write_requests": "in-process PutItem/TransactWriteItems calls (and txn-floor-marks' UpdateItem marks) counted by a wrapper around the client (one per call; SDK retries not counted; booking-http: its write requests on the wire, through its own proxy) plus, for outbox, every write request the relay process sent (UpdateItem marks on the outbox table, or TransactWriteItems of up to -mark-batch-size while marking is far behind, lease and checkpoint UpdateItems on the state table, SDK retries included), counted by a reverse proxy between the relay and DynamoDB, from relay start to exit; per committed booking",
		"ddb_write_items":    "as ddb_write_requests, but a TransactWriteItems counts its items (2)",
		"lost":               "committed events not received in a POST the endpoint accepted within -drain-timeout after the last booking (saturation: after the hold)",
		"duplicates":         "rows the endpoint stored whose event_id it had already stored (endpoint.Stats.Duplicates)",
		"relay":              "the relay binary runs as a separate process per run against the same DynamoDB (through the counting proxy) and the same endpoint, with -sink-profile generic and the bench's -batch-size, -batch-window, -batches-in-flight and -mark-batch-size; started and ready (/readyz) before the bookings, stopped with SIGTERM after every row arrived and was marked",
		"ddb_local_cpu":      "DynamoDB Local's CPU time (utime+stime of its process, read from the host's /proc) from the first booking until every row arrived and, for the relay's modes and txn-floor-marks, was marked, per committed booking; it shows where DynamoDB Local's work goes, since every mode shares its two cores with it",
		"ratios":             "median of the mode / median of the baseline",
		"txn-floor":          "raw TransactWriteItems of the booking and the same outbox item outbox.Writer sends, into the run's outbox table (stream, index, TTL); no relay runs",
		"txn-floor-marks":    "txn-floor, and after each commit the event is queued in-process (unbounded, so a booking never waits) for one worker that marks it DELIVERED with the relay's own conditional UpdateItem (status, delivered_at, expires_at; leaves the pending index), one write at a time in commit order; no stream is read and nothing is POSTed: the DynamoDB work that marking every event adds to txn-floor, without the rest of the relay. Marks still queued when the bookings end are made after them (drain_s: last booking to last mark), so its booking latency is a lower bound for marking every event; marks not made count as analytics errors",
		"memory-queue":       "PutItem, then append to an in-process slice; a worker POSTs all of it as one JSON array every 2s; a failed POST drops its rows",
		"client_settings":    "every mode writes through the same dynamo.NewClients client",
		"endpoint":           "the endpoint (cmd/analytics-sink/endpoint, no profile) runs in the bench process; the relay runs with -sink-profile generic",
	}
}

// hostInfo says what ran the benchmark: the machine, and the code and
// library versions, so that committed results can be matched to them.
// dynamodb is the DynamoDB Local image, or the endpoint given.
func hostInfo(dynamodb string) map[string]string {
	h, _ := os.Hostname()
	info := map[string]string{
		"go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH,
		"cpus": fmt.Sprint(runtime.NumCPU()), "hostname": h, "dynamodb": dynamodb,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/aws/aws-sdk-go-v2", "github.com/aws/aws-sdk-go-v2/service/dynamodb",
				"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams", "github.com/testcontainers/testcontainers-go":
				info[d.Path] = d.Version
			}
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				info[s.Key] = s.Value
			}
		}
	}
	// go run stamps no VCS information: ask git, when there is one.
	if _, ok := info["vcs.revision"]; !ok {
		if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
			info["vcs.revision"] = strings.TrimSpace(string(out))
		}
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
			info["vcs.modified"] = fmt.Sprint(len(bytes.TrimSpace(out)) > 0)
		}
	}
	return info
}

// modeRuns returns the results of mode in run order.
func (rep *Report) modeRuns(mode string) []Result {
	var out []Result
	for _, r := range rep.Runs {
		if r.Mode == mode {
			out = append(out, r)
		}
	}
	return out
}

// summarize fills Summary and Ratios from Runs.
func (rep *Report) summarize() {
	rep.Summary = nil
	rep.Ratios = nil
	med := map[string]map[string]float64{}
	for _, mode := range rep.Config.Modes {
		runs := rep.modeRuns(mode)
		if len(runs) == 0 {
			continue
		}
		ms := ModeSummary{Mode: mode, Figures: map[string]Spread{}}
		med[mode] = map[string]float64{}
		for _, f := range figures {
			if f.analytics && !hasAnalytics(mode) {
				continue
			}
			vs := make([]float64, len(runs))
			for i, r := range runs {
				vs[i] = f.get(r)
			}
			if slices.ContainsFunc(vs, math.IsNaN) {
				continue // not measured in some run
			}
			s := spread(vs)
			ms.Figures[f.key] = s
			med[mode][f.key] = s.Median
		}
		rep.Summary = append(rep.Summary, ms)
	}
	for _, base := range baselines {
		if med[base] == nil {
			continue
		}
		for _, mode := range rep.Config.Modes {
			if mode == base || med[mode] == nil {
				continue
			}
			row := RatioRow{Mode: mode, Baseline: base, Figures: ratioFigures}
			for _, k := range ratioFigures {
				row.Values = append(row.Values, JSONF(ratio(med[mode][k], med[base][k])))
			}
			rep.Ratios = append(rep.Ratios, row)
		}
	}
}

// Print writes the summary table and the ratios.
func (rep *Report) Print(w io.Writer) {
	c := rep.Config
	fmt.Fprintf(w, "\nddboutbox bench: %d bookings x %d rounds, concurrency %d, endpoint latency %s, relay batch %d / %s, %s\n",
		c.Bookings, c.Rounds, c.Concurrency, time.Duration(c.SinkLatency), c.BatchSize, time.Duration(c.BatchWindow), rep.Host["go"]+" "+rep.Host["cpus"]+" CPUs")
	if c.Rounds > 1 {
		fmt.Fprintln(w, "median over the rounds [min-max]")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var modes []string
	for _, s := range rep.Summary {
		modes = append(modes, s.Mode)
	}
	fmt.Fprintf(tw, "\t%s\t\n", strings.Join(modes, "\t"))
	for _, f := range figures {
		cells := make([]string, len(rep.Summary))
		for i, s := range rep.Summary {
			sp, ok := s.Figures[f.key]
			switch {
			case !ok:
				cells[i] = "-"
			case c.Rounds > 1 && sp.Min != sp.Max:
				cells[i] = fmt.Sprintf(f.format+" ["+f.format+"-"+f.format+"]", sp.Median, sp.Min, sp.Max)
			default:
				cells[i] = fmt.Sprintf(f.format, sp.Median)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", f.label, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()

	if len(rep.Ratios) > 0 {
		fmt.Fprintln(w, "\nratios (median / baseline's median):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "mode\tvs\tbookings/s\tbooking p50\tbooking p99\t\n")
		for _, r := range rep.Ratios {
			cells := make([]string, len(r.Values))
			for i, v := range r.Values {
				if math.IsNaN(float64(v)) {
					cells[i] = "-"
				} else {
					cells[i] = fmt.Sprintf("%.2fx", float64(v))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t\n", r.Mode, r.Baseline, strings.Join(cells, "\t"))
		}
		_ = tw.Flush()
	}
	for _, r := range rep.Runs {
		if r.Mode == ModeOutbox && r.RelayWrites != nil {
			fmt.Fprintf(w, "\noutbox DynamoDB writes, round %d: %d in-process TransactWriteItems; relay:", r.Round, r.AppWrites)
			for _, k := range slices.Sorted(maps.Keys(r.RelayWrites)) {
				fmt.Fprintf(w, " %s=%d", k, r.RelayWrites[k])
			}
			since := func(k string) float64 { return r.RelayMetrics[k] - r.RelayMetricsWarmUp[k] }
			fmt.Fprintf(w, " (relay metrics after the warm-up: delivered %.0f, duplicate %.0f)\n", since("events_delivered_total"), since("events_duplicate_total"))
		}
	}
	rep.printCapacity(w)
	fmt.Fprintln(w, "\nmethod: see \"methods\" in the JSON (-out); write requests per event include the relay's marks, leases and checkpoints, counted by a proxy.")
}

// WriteJSON writes the report to path, creating its directory.
func (rep *Report) WriteJSON(path string) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
