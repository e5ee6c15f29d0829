package cli

import (
	"flag"
	"fmt"
	"strings"

	"github.com/ddboutbox/ddboutbox/relay"
)

// Relay registers the relay's flags onto c, with the documented defaults.
// The returned check, called after parsing, rejects a zero batch cap given
// on the command line: in the config zero means "default", which would
// silently turn -batch-size 0 into 500.
func Relay(fs *flag.FlagSet, c *relay.Config) (check func() error) {
	fs.StringVar(&c.SinkURL, "sink-url", "", "analytics endpoint batches are POSTed to (required); its query string and credentials are never logged")
	fs.StringVar(&c.SinkProfile, "sink-profile", "", "endpoint limits: "+strings.Join(relay.ProfileNames(), ", ")+"; sets format, batch caps and request rate unless given explicitly")
	fs.Float64Var(&c.SinkRate, "sink-rate", 0, "most POSTs per second (0 = the profile's, or unlimited)")
	fs.IntVar(&c.SinkMaxInFlight, "sink-max-in-flight", 0, "most POSTs awaiting an answer (0 = the profile's, or unlimited)")
	secretFile := fs.String("webhook-secret-file", "", "file holding the Standard Webhooks signing secret (whsec_...); or set WEBHOOK_SECRET. Never pass the secret itself as a flag")
	fs.TextVar(&c.SinkFormat, "sink-format", relay.FormatArray, `body format: "array" (JSON array of rows, Power BI streaming) or "rows" ({"rows":[...]}, Power BI push)`)
	fs.IntVar(&c.BatchSize, "batch-size", relay.DefaultBatchSize, "flush a batch at this many rows (1 to 10000)")
	fs.IntVar(&c.BatchBytes, "batch-bytes", relay.DefaultBatchBytes, "hard cap on a POST body in bytes; a single larger row is marked FAILED")
	fs.DurationVar(&c.BatchWindow, "batch-window", relay.DefaultBatchWindow, "flush a batch this long after its first record (linger)")
	fs.IntVar(&c.BatchesInFlight, "batches-in-flight", relay.DefaultBatchesInFlight, "batches being POSTed or marked at once (1 to 64); 1 keeps rows in stream order, a crash re-sends at most this many")
	fs.DurationVar(&c.DeliveredTTL, "delivered-ttl", 0, "expires_at of delivered events is now plus this (0 = 168h)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 0, "timeout of one POST (0 = 10s)")
	fs.IntVar(&c.MaxAttempts, "max-attempts", -1, "POSTs of a batch before its events are marked FAILED; -1 = retry until delivered (401/403/404/405/407 never count)")
	fs.DurationVar(&c.MaxRecordAge, "max-record-age", 0, "mark events older than this FAILED instead of sending them, also while their batch is retried; a redrive or replay restarts the clock; must exceed -sweep-after while the sweeper runs (0 = no limit)")
	fs.DurationVar(&c.UnhealthyAfter, "unhealthy-after", 0, "report not ready when deliveries keep failing this long (0 = 1m)")
	fs.TextVar(&c.StartPosition, "start-position", relay.StartTrimHorizon, `where a shard without checkpoint is read from: "trim_horizon" or "latest"`)
	fs.DurationVar(&c.SweepAfter, "sweep-after", 0, "deliver PENDING events older than this from the table, in case the stream path missed them (0 = 5m)")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", 0, "how often the sweeper runs (0 = min(1m, sweep-after); negative disables it)")
	fs.DurationVar(&c.ClaimDuration, "claim-duration", 0, "how long a swept event is claimed against other relays, renewed while it is in the pipeline (0 = 2m)")
	fs.DurationVar(&c.RetryBase, "retry-base", 0, "first backoff ceiling between retries, doubled per attempt, full jitter (0 = 200ms)")
	fs.DurationVar(&c.RetryMax, "retry-max", 0, "largest backoff between retries (0 = 30s)")
	fs.DurationVar(&c.PollInterval, "poll-interval", 0, "least time between GetRecords calls on a shard that is caught up (0 = 250ms)")
	fs.DurationVar(&c.ShardSyncInterval, "shard-sync-interval", 0, "how often new shards are discovered (0 = 10s)")
	fs.IntVar(&c.MarkConcurrency, "mark-concurrency", 0, "the most marking writes in flight at once: one at a time while marking keeps up, twice as wide for each batch that waited for the marks of the one ahead of it with -batches-in-flight batches waiting (reading the stream held up); always this many with -batches-in-flight 1 (0 = 16)")
	fs.IntVar(&c.MarkBatchSize, "mark-batch-size", 0, "while marking is far behind (-batches-in-flight batches delivered and waiting for the marks of the one ahead of them) at -mark-concurrency writes at once, mark up to this many events per TransactWriteItems, at 2 write units per event; otherwise an UpdateItem each; 1 = never (0 = 25, max 100)")
	fs.StringVar(&c.Owner, "owner", "", "this relay's name in the lease table (empty = hostname); a second process under the same name waits until the first stops")
	fs.DurationVar(&c.LeaseDuration, "lease-duration", 0, "shard lease lifetime without renewal (0 = 30s)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 0, "bound on the final flush after SIGTERM (0 = 30s)")
	return func() error {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		if c.BatchSize == 0 || c.BatchBytes == 0 || c.BatchWindow == 0 || c.BatchesInFlight == 0 {
			return Usage(fmt.Errorf("-batch-size, -batch-bytes, -batch-window and -batches-in-flight must be positive"))
		}
		// A profile fills what was not given; the flag defaults must not
		// hide it (-batch-bytes 1 MiB would override powerbi-streaming's 15 KB).
		if c.SinkProfile != "" {
			if !given["batch-size"] {
				c.BatchSize = 0
			}
			if !given["batch-bytes"] {
				c.BatchBytes = 0
			}
			if !given["sink-format"] {
				c.SinkFormat = ""
			}
		}
		secret, err := relay.LoadSecret(*secretFile, "WEBHOOK_SECRET")
		if err != nil {
			return Usage(err)
		}
		c.WebhookSecret = secret
		return Usage(c.Validate())
	}
}
