package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// Format is the JSON shape of a POST body.
type Format string

// The body formats. FormatArray is what Power BI streaming datasets take;
// FormatRows is what Power BI push datasets take.
const (
	FormatArray Format = "array" // [{row}, {row}]
	FormatRows  Format = "rows"  // {"rows":[{row}, {row}]}
)

// Limits and defaults of the batching knobs.
const (
	DefaultBatchSize   = 500
	MaxBatchSize       = 10000 // Power BI's rows-per-request limit
	DefaultBatchBytes  = 1 << 20
	DefaultBatchWindow = time.Second
	// DefaultBatchesInFlight is Config.BatchesInFlight's default.
	DefaultBatchesInFlight = 4
	// DefaultMarkBatchSize is Config.MarkBatchSize's default.
	DefaultMarkBatchSize = 25
	// MaxMarkBatchSize is DynamoDB's limit of actions per transaction.
	MaxMarkBatchSize = 100
)

// Config is the relay's configuration. The zero value of every field but
// SinkURL means its documented default.
type Config struct {
	// SinkURL is the analytics endpoint batches are POSTed to. Required.
	SinkURL string
	// SinkProfile names the endpoint's limits (see LookupProfile):
	// powerbi-streaming, powerbi-push or generic. It fills SinkFormat,
	// BatchSize, BatchBytes, SinkRate and SinkMaxInFlight where those are
	// zero; explicit values override it. Empty: no profile.
	SinkProfile string
	// SinkRate caps POSTs per second (golang.org/x/time/rate, burst 1).
	// 0: the profile's rate, or no limit.
	SinkRate float64
	// SinkMaxInFlight caps POSTs awaiting an answer at once. 0: the
	// profile's cap, or none.
	SinkMaxInFlight int
	// WebhookSecret, when set, signs every POST per the Standard Webhooks
	// spec (webhook-id, webhook-timestamp, webhook-signature), through
	// an *HTTPSink (see New). It prints as REDACTED.
	WebhookSecret Secret
	// SinkFormat is FormatArray (default) or FormatRows.
	SinkFormat Format
	// BatchesInFlight is how many batches may be between the batcher and
	// their checkpoint at once: being POSTed, or delivered and being
	// marked. More overlap the endpoint's latency with marking and with
	// each other; 1 keeps rows at the endpoint in stream order. A crash
	// re-sends at most this many batches. Default 4.
	BatchesInFlight int
	// BatchSize flushes a batch at this many rows. Default 500, max 10,000.
	BatchSize int
	// BatchBytes is a hard cap on a POST body's size in bytes. Default 1 MiB.
	BatchBytes int
	// BatchWindow flushes a batch this long after its first record arrived.
	// Default 1s; use a tiny value such as 1ms to send without lingering.
	BatchWindow time.Duration

	// Tables names the outbox and state tables. Defaults "Outbox" and
	// "OutboxRelayState".
	Tables dynamo.Tables
	// DeliveredTTL sets expires_at on delivered events. Default 7 days.
	DeliveredTTL time.Duration

	// RequestTimeout bounds one POST. Default 10s.
	RequestTimeout time.Duration
	// MaxAttempts is how many times a batch is POSTed before its events
	// are marked FAILED (like Lambda's MaximumRetryAttempts). 0 or -1:
	// retry until delivered (default). Attempts answered 401, 403, 404,
	// 405 or 407 do not count: they mean the endpoint is misconfigured,
	// not that the rows are bad.
	MaxAttempts int
	// MaxRecordAge marks an event FAILED instead of sending it when it
	// occurred longer ago than this (like Lambda's MaximumRecordAgeInSeconds):
	// checked when it is read and before every POST, so a batch retried
	// through an outage sheds the events that grow too old meanwhile.
	// A redrive or replay restarts the clock (see outbox.PendingSince).
	// 0 or negative: no limit (default). With the sweeper on it must exceed
	// SweepAfter, or every event the sweeper finds would fail unsent.
	MaxRecordAge time.Duration
	// UnhealthyAfter is how long deliveries may keep failing before Ready
	// reports the relay not ready. Default 1m.
	UnhealthyAfter time.Duration
	// RetryBase and RetryMax bound the full-jitter backoff between
	// retries of a failed POST. Defaults 200ms and 30s.
	RetryBase, RetryMax time.Duration

	// PollInterval is the least time between the starts of two GetRecords
	// calls on a shard, unless the first returned a full page (a backlog is
	// read back to back). Default 250ms: DynamoDB Streams allows 5 calls
	// per second per shard, and every call costs the table's stream reads.
	PollInterval time.Duration
	// ShardSyncInterval is how often the stream's shard list is refreshed
	// to pick up new shards. Default 10s.
	ShardSyncInterval time.Duration
	// MarkConcurrency is the most marking writes that run at once. A relay
	// marks one write at a time while it keeps up; the batch after each
	// one tells how far behind marking is: delivered and waiting for the
	// marks with room in flight for more (behind: the same pace, for the
	// lag costs only the time until events read DELIVERED, and wider
	// marking takes capacity from the application's writes), waiting with
	// BatchesInFlight batches so that no more can be cut and reading the
	// stream waits (far behind: twice as wide), or still being POSTed when
	// they landed, or none queued (caught up: out of transactions, then
	// half as wide); a batch with nothing to POST says nothing. So a
	// relay that keeps up spreads its marks over the time until the next
	// batch instead of writing them in a burst after each POST. With
	// BatchesInFlight 1 no batch can wait, and marking always runs
	// MarkConcurrency at a time. Default 16.
	MarkConcurrency int
	// MarkBatchSize is the most delivered events one marking write moves
	// to DELIVERED while marking is far behind at MarkConcurrency writes
	// at once: those batches are marked in TransactWriteItems of up to this
	// many conditional updates (at most 100), fewer and larger writes, to
	// catch up. Otherwise, and always with 1, each event is one
	// conditional UpdateItem. DynamoDB bills each item of a transaction at
	// twice the write units, so a relay that keeps up pays nothing for it.
	// Default DefaultMarkBatchSize.
	MarkBatchSize int
	// StartPosition is where a shard without a checkpoint is read from:
	// StartTrimHorizon (default: everything the stream still holds) or
	// StartLatest (only new records; the sweeper picks up the rest).
	StartPosition StartPosition

	// SweepAfter is how old a PENDING event must be before the sweeper
	// delivers it, in case the stream path missed it. Default 5m.
	SweepAfter time.Duration
	// SweepInterval is how often the sweeper looks. Default 1m, or
	// SweepAfter when that is shorter. Negative disables the sweeper.
	SweepInterval time.Duration
	// ClaimDuration is how long a swept event is claimed by this relay, so
	// that two relays sweeping at once do not both send it; the claim is
	// renewed every third of it until the event is settled. Default 2m.
	ClaimDuration time.Duration

	// Owner names this relay in the lease table. Default: the hostname, so
	// a restarted relay on the same host takes its shards back at once.
	// Set it when running several relays on one host: one process at a
	// time acts for an owner (the state table's owner row says which), and
	// another started under it waits, not ready, until that one stops or
	// its hold lapses after LeaseDuration. At most MaxOwnerBytes: the
	// sweeper writes it into outbox items (see outbox.EventHeadroom).
	Owner string
	// LeaseDuration is how long a shard lease lives unrenewed. Default 30s.
	LeaseDuration time.Duration
	// ShutdownTimeout bounds the final flush on shutdown. Default 30s.
	ShutdownTimeout time.Duration

	// Logger receives the relay's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer, when set, exports the relay's Prometheus metrics.
	Registerer prometheus.Registerer
}

// StartPosition says where a shard with no checkpoint is read from.
type StartPosition string

// The start positions.
const (
	StartTrimHorizon StartPosition = "trim_horizon"
	StartLatest      StartPosition = "latest"
)

// MarshalText lets a StartPosition be a flag value (flag.TextVar).
func (p StartPosition) MarshalText() ([]byte, error) { return []byte(p), nil }

// UnmarshalText accepts "trim_horizon" or "latest".
func (p *StartPosition) UnmarshalText(b []byte) error {
	switch v := StartPosition(b); v {
	case StartTrimHorizon, StartLatest:
		*p = v
		return nil
	}
	return fmt.Errorf("%w: start position %q must be %q or %q", ErrInvalidConfig, b, StartTrimHorizon, StartLatest)
}

// MaxOwnerBytes bounds Owner, which claims add to outbox items within
// outbox.EventHeadroom.
const MaxOwnerBytes = 256

// ErrInvalidConfig wraps every configuration error.
var ErrInvalidConfig = errors.New("invalid relay config")

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if p, err := LookupProfile(c.SinkProfile); c.SinkProfile != "" && err == nil {
		c = c.withProfile(p)
	}
	if c.SinkFormat == "" {
		c.SinkFormat = FormatArray
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	def(&c.BatchWindow, DefaultBatchWindow)
	c.Tables = c.Tables.WithDefaults()
	def(&c.DeliveredTTL, 7*24*time.Hour)
	def(&c.RequestTimeout, 10*time.Second)
	if c.MaxAttempts < 0 {
		c.MaxAttempts = 0
	}
	def(&c.UnhealthyAfter, time.Minute)
	if c.StartPosition == "" {
		c.StartPosition = StartTrimHorizon
	}
	def(&c.SweepAfter, 5*time.Minute)
	def(&c.SweepInterval, min(time.Minute, c.SweepAfter))
	def(&c.ClaimDuration, 2*time.Minute)
	def(&c.RetryBase, 200*time.Millisecond)
	def(&c.RetryMax, 30*time.Second)
	def(&c.PollInterval, 250*time.Millisecond)
	def(&c.ShardSyncInterval, 10*time.Second)
	if c.MarkConcurrency == 0 {
		c.MarkConcurrency = 16
	}
	if c.BatchesInFlight == 0 {
		c.BatchesInFlight = DefaultBatchesInFlight
	}
	if c.MarkBatchSize == 0 {
		c.MarkBatchSize = DefaultMarkBatchSize
	}
	if c.Owner == "" {
		c.Owner, _ = os.Hostname()
		if c.Owner == "" {
			c.Owner = "relay"
		}
	}
	def(&c.LeaseDuration, 30*time.Second)
	def(&c.ShutdownTimeout, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// withProfile fills the zero batching and pacing fields from p.
func (c Config) withProfile(p Profile) Config {
	if c.SinkFormat == "" {
		c.SinkFormat = p.Format
	}
	if c.BatchSize == 0 {
		c.BatchSize = min(DefaultBatchSize, p.MaxRows)
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = p.MaxBytes
	}
	if c.SinkRate == 0 && !p.Unlimited() {
		c.SinkRate = float64(p.RequestsPerSecond)
	}
	if c.SinkMaxInFlight == 0 {
		c.SinkMaxInFlight = p.MaxInFlight
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.SinkProfile != "" {
		if _, err := LookupProfile(c.SinkProfile); err != nil {
			return err
		}
	}
	c = c.WithDefaults()
	if c.SinkURL == "" {
		return bad("sink url is required")
	}
	u, err := url.Parse(c.SinkURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("sink url %q must be an absolute http(s) URL", redactURL(c.SinkURL))
	}
	if c.SinkFormat != FormatArray && c.SinkFormat != FormatRows {
		return bad("sink format %q must be %q or %q", c.SinkFormat, FormatArray, FormatRows)
	}
	if len(c.Owner) > MaxOwnerBytes {
		return bad("owner is %d bytes, at most %d", len(c.Owner), MaxOwnerBytes)
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		return bad("batch size %d must be between 1 and %d", c.BatchSize, MaxBatchSize)
	}
	if min := envelopeSize(c.SinkFormat) + 2; c.BatchBytes < min {
		return bad("batch bytes %d must be at least %d", c.BatchBytes, min)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"batch window", c.BatchWindow}, {"delivered ttl", c.DeliveredTTL},
		{"request timeout", c.RequestTimeout}, {"retry base", c.RetryBase}, {"retry max", c.RetryMax},
		{"poll interval", c.PollInterval}, {"shard sync interval", c.ShardSyncInterval},
		{"lease duration", c.LeaseDuration}, {"shutdown timeout", c.ShutdownTimeout},
		{"unhealthy after", c.UnhealthyAfter}, {"sweep after", c.SweepAfter}, {"claim duration", c.ClaimDuration},
	} {
		if d.v < 0 {
			return bad("%s %s must not be negative", d.name, d.v)
		}
	}
	if c.RetryMax < c.RetryBase {
		return bad("retry max %s is below retry base %s", c.RetryMax, c.RetryBase)
	}
	// A few nanoseconds (a forgotten unit) would panic the lease renewal
	// ticker (LeaseDuration/3 rounds to 0), make a loop spin, or write
	// epoch-millisecond expiries that have passed when they land. A
	// negative sweep interval disables the sweeper; other negatives were
	// refused above.
	for _, d := range []struct {
		name   string
		v, min time.Duration
	}{
		{"lease duration", c.LeaseDuration, time.Second}, {"claim duration", c.ClaimDuration, time.Second},
		{"shard sync interval", c.ShardSyncInterval, 100 * time.Millisecond},
		{"sweep interval", c.SweepInterval, 100 * time.Millisecond}, {"poll interval", c.PollInterval, time.Millisecond},
	} {
		if d.v >= 0 && d.v < d.min {
			return bad("%s %s must be at least %s", d.name, d.v, d.min)
		}
	}
	if c.StartPosition != StartTrimHorizon && c.StartPosition != StartLatest {
		return bad("start position %q must be %q or %q", c.StartPosition, StartTrimHorizon, StartLatest)
	}
	// NaN passes every comparison and would turn pacing off: a profile's
	// rate is filled only for 0, and a limiter made only above it.
	if !(c.SinkRate >= 0) || math.IsInf(c.SinkRate, 0) || c.SinkMaxInFlight < 0 {
		return bad("sink rate %g must be a finite number, and it and max in flight %d must not be negative", c.SinkRate, c.SinkMaxInFlight)
	}
	// The sweeper only finds events older than SweepAfter: with a shorter
	// age limit it would mark each of them FAILED instead of delivering it.
	if c.SweepInterval >= 0 && c.MaxRecordAge > 0 && c.MaxRecordAge <= c.SweepAfter {
		return bad("-max-record-age %s must be longer than -sweep-after %s, or every event the sweeper finds is FAILED unsent (a negative -sweep-interval disables the sweeper)", c.MaxRecordAge, c.SweepAfter)
	}
	if c.MarkConcurrency < 1 {
		return bad("mark concurrency %d must be at least 1", c.MarkConcurrency)
	}
	if c.MarkBatchSize < 1 || c.MarkBatchSize > MaxMarkBatchSize {
		return bad("mark batch size %d must be between 1 and %d", c.MarkBatchSize, MaxMarkBatchSize)
	}
	if c.BatchesInFlight < 1 || c.BatchesInFlight > 64 {
		return bad("batches in flight %d must be between 1 and 64", c.BatchesInFlight)
	}
	return nil
}

// redactURL drops credentials and query values from a URL before it is
// logged: Power BI push URLs carry their key in the query string.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q.Set(k, "REDACTED")
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// MarshalText lets a Format be a flag value (flag.TextVar).
func (f Format) MarshalText() ([]byte, error) { return []byte(f), nil }

// UnmarshalText accepts "array" or "rows".
func (f *Format) UnmarshalText(b []byte) error {
	switch v := Format(b); v {
	case FormatArray, FormatRows:
		*f = v
		return nil
	}
	return fmt.Errorf("%w: sink format %q must be %q or %q", ErrInvalidConfig, b, FormatArray, FormatRows)
}
