package relay

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/time/rate"
)

// Profile is what a kind of analytics endpoint accepts: the body format,
// the caps on one POST and the request rate. The relay sizes its batches
// and paces its POSTs by it; the local analytics endpoint enforces it in
// strict mode.
type Profile struct {
	// Name is how the profile is selected, e.g. -sink-profile powerbi-push.
	Name string
	// Format is the body shape the endpoint takes.
	Format Format
	// MaxRows is the most rows one POST may carry.
	MaxRows int
	// MaxBytes is the largest POST body, envelope included.
	MaxBytes int
	// RequestsPerSecond is the sustained POST rate; rate.Inf (or 0) means
	// no limit.
	RequestsPerSecond rate.Limit
	// Burst is how many POSTs may go back to back before the rate applies.
	// Every profile here uses 1, i.e. evenly spaced requests: a vendor that
	// counts "N per second" or "N per minute" in a sliding window could
	// otherwise see Burst+N requests inside one window.
	Burst int
	// MaxInFlight is the most POSTs that may be awaiting their answer at
	// once; 0 means the endpoint documents no limit.
	MaxInFlight int
	// Source says where the limits come from.
	Source string
}

// The profile names.
const (
	ProfilePowerBIStreaming = "powerbi-streaming"
	ProfilePowerBIPush      = "powerbi-push"
	ProfileGeneric          = "generic"
)

// Where the Power BI limits are documented.
const (
	// powerBIPushLimitsDoc is the REST API's own list of push dataset
	// ("push semantic model") limits: 10,000 rows per POST rows request,
	// 120 POST rows requests per minute per dataset and 5 pending POST
	// rows requests per dataset. It also caps 1,000,000 rows per hour per
	// dataset (120 requests per hour once a table holds 250,000 rows),
	// which no per-request profile can express: the service answers 429
	// with Retry-After, which the relay honours.
	powerBIPushLimitsDoc = "https://learn.microsoft.com/en-us/power-bi/developer/embedded/push-datasets-limitations"
	// powerBIRealTimeDoc compares streaming and push datasets: streaming
	// takes 5 requests per second of at most 15 KB each; push takes 16 MB
	// per request (at most 10,000 rows). It gives push as "1 request/second"
	// too, which contradicts the REST API limits page above; the profile
	// follows the REST API page (120 per minute), the narrower statement
	// of the two about POST rows, and the 429 path covers the difference.
	powerBIRealTimeDoc = "https://learn.microsoft.com/en-us/training/modules/monitor-data-real-time-power-bi/4-create-real-time-dashboards"
)

// profiles holds the built-in profiles. It is unexported so that no caller
// can change the limits every other caller sees; use LookupProfile.
var profiles = map[string]Profile{
	// A Power BI streaming dataset takes a JSON array of rows. "15 KB" is
	// not said to be 1,000 or 1,024 bytes, so the cap is the lower reading,
	// 15,000 bytes: a body that fits it fits either. The row cap is the
	// POST rows limit of the same API; the byte cap binds long before it.
	// No limit on pending requests is documented.
	ProfilePowerBIStreaming: {
		Name:              ProfilePowerBIStreaming,
		Format:            FormatArray,
		MaxRows:           10_000,
		MaxBytes:          15_000,
		RequestsPerSecond: 5,
		Burst:             1,
		Source:            powerBIRealTimeDoc,
	},
	// A Power BI push dataset takes {"rows":[...]}. "16 MB" is likewise
	// read as 16,000,000 bytes, the lower of 16*10^6 and 16*2^20.
	ProfilePowerBIPush: {
		Name:              ProfilePowerBIPush,
		Format:            FormatRows,
		MaxRows:           10_000,
		MaxBytes:          16_000_000,
		RequestsPerSecond: rate.Limit(120.0 / 60.0),
		Burst:             1,
		MaxInFlight:       5,
		Source:            powerBIPushLimitsDoc + " (rows, rate, pending requests); " + powerBIRealTimeDoc + " (16 MB per request)",
	},
	// generic is any JSON-array endpoint: the relay's own defaults for the
	// byte cap (1 MiB) and Power BI's row cap, and no rate limit.
	ProfileGeneric: {
		Name:              ProfileGeneric,
		Format:            FormatArray,
		MaxRows:           MaxBatchSize,
		MaxBytes:          DefaultBatchBytes,
		RequestsPerSecond: rate.Inf,
		Source:            "this project's defaults; no vendor limits",
	},
}

// LookupProfile returns the named profile. An unknown name is an error
// wrapping ErrInvalidConfig that lists the known names.
func LookupProfile(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("%w: sink profile %q must be one of %s",
			ErrInvalidConfig, name, strings.Join(ProfileNames(), ", "))
	}
	return p, nil
}

// ProfileNames returns the known profile names, sorted.
func ProfileNames() []string {
	names := make([]string, 0, len(profiles))
	for name := range profiles {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Unlimited reports whether the profile sets no request rate.
func (p Profile) Unlimited() bool {
	return p.RequestsPerSecond <= 0 || p.RequestsPerSecond == rate.Inf
}

// Limiter returns a new token bucket for the profile's request rate, full
// to start with: Burst requests may go at once, then one every
// 1/RequestsPerSecond. A profile without a rate gets a limiter that never
// waits. Each call returns a fresh limiter; share one among everything that
// POSTs to the same endpoint, since the vendor counts per dataset, not per
// connection.
func (p Profile) Limiter() *rate.Limiter {
	if p.Unlimited() {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(p.RequestsPerSecond, max(p.Burst, 1))
}

// LimitSink wraps s so that at most maxInFlight Sends run at once (no cap
// when maxInFlight <= 0) and each one waits for lim (no pacing when lim is
// nil). Every Send is one POST, so retries and the halves of a split batch
// are paced like first attempts.
//
// A Send first takes an in-flight slot and only then waits for the
// limiter, so that the POST leaves as soon as its token is granted: taking
// the token first and then queueing for a slot would let two POSTs leave
// closer together than the rate allows.
func LimitSink(s Sink, lim *rate.Limiter, maxInFlight int) Sink {
	ls := &limitedSink{next: s, lim: lim}
	if maxInFlight > 0 {
		ls.slots = make(chan struct{}, maxInFlight)
	}
	return ls
}

type limitedSink struct {
	next  Sink
	lim   *rate.Limiter
	slots chan struct{} // nil: no in-flight cap
}

func (s *limitedSink) Send(ctx context.Context, body []byte, idempotencyKey string) error {
	if s.slots != nil {
		select {
		case s.slots <- struct{}{}:
			defer func() { <-s.slots }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.lim != nil {
		if err := s.lim.Wait(ctx); err != nil {
			return fmt.Errorf("wait for the sink rate limit: %w", err)
		}
	}
	return s.next.Send(ctx, body, idempotencyKey)
}
