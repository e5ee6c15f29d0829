package relay

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus metrics. They are always counted;
// they are exported only when Config.Registerer is set.
type metrics struct {
	eventsRead, eventsDelivered, eventsFailed, eventsDuplicate  prometheus.Counter
	recordsSkipped, retries, sweeperFound, markedInTransactions prometheus.Counter
	batchRows, batchBytes, requestSeconds, lagSeconds           prometheus.Histogram
	requests                                                    *prometheus.CounterVec
	iteratorAge                                                 *prometheus.GaugeVec
	oldestPending, markWidth                                    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "ddboutbox_relay"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help})
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets})
	}
	m := &metrics{
		eventsRead:      counter("events_read_total", "Outbox events read from the stream."),
		eventsDelivered: counter("events_delivered_total", "Events the endpoint accepted and this relay marked DELIVERED."),
		eventsFailed:    counter("events_failed_total", "Events marked FAILED (poison rows, max-attempts, max-record-age)."),
		eventsDuplicate: counter("events_duplicate_total", "Events the endpoint accepted that were already out of PENDING."),
		recordsSkipped:  counter("records_skipped_total", "Stream records that carry no event to send (MODIFY, REMOVE, non-outbox)."),
		retries:         counter("retries_total", "POSTs repeated after a failure."),
		sweeperFound:    counter("sweeper_found_total", "PENDING events the sweeper claimed because the stream path missed them."),
		markedInTransactions: counter("marked_in_transactions_total",
			"Delivered events marked in a TransactWriteItems (twice the write units of an UpdateItem) because marking was far behind (-mark-batch-size)."),
		batchRows:      histogram("batch_rows", "Rows per POST.", prometheus.ExponentialBuckets(1, 4, 8)),
		batchBytes:     histogram("batch_bytes", "Bytes per POST body.", prometheus.ExponentialBuckets(256, 4, 9)),
		requestSeconds: histogram("endpoint_request_duration_seconds", "Duration of POSTs to the endpoint.", prometheus.DefBuckets),
		lagSeconds:     histogram("end_to_end_lag_seconds", "Time from an event's occurred_at to its delivery.", prometheus.ExponentialBuckets(0.05, 2, 14)),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "endpoint_requests_total", Help: "POSTs to the endpoint by status code (or \"error\" when none came back).",
		}, []string{"code"}),
		iteratorAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Name: "iterator_age_seconds", Help: "Age of the newest record read from each shard when records were returned; 0 when caught up.",
		}, []string{"shard"}),
		oldestPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "oldest_pending_age_seconds", Help: "Age of the oldest PENDING event, measured by the sweeper.",
		}),
		markWidth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "marking_width", Help: "Marking writes in flight at once for the batch last settled: 1 while marking keeps up; doubled, up to -mark-concurrency, only while it is far behind (every -batches-in-flight slot delivered and waiting for the marks); always -mark-concurrency with -batches-in-flight 1.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.eventsRead, m.eventsDelivered, m.eventsFailed, m.eventsDuplicate, m.recordsSkipped, m.retries,
		m.sweeperFound, m.markedInTransactions, m.batchRows, m.batchBytes, m.requestSeconds, m.lagSeconds, m.requests, m.iteratorAge, m.oldestPending, m.markWidth,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// statusLabel is the code label of a POST's outcome.
func statusLabel(err error) string {
	if err == nil {
		return "2xx"
	}
	var se *StatusError
	if errors.As(err, &se) {
		return strconv.Itoa(se.Code)
	}
	return "error"
}

// meteredSink counts and times each POST that leaves for the endpoint.
type meteredSink struct {
	next Sink
	m    *metrics
	n    *counters
}

func (s meteredSink) Send(ctx context.Context, body []byte, idempotencyKey string) error {
	s.n.requests.Add(1)
	t0 := time.Now()
	err := s.next.Send(ctx, body, idempotencyKey)
	s.m.requestSeconds.Observe(time.Since(t0).Seconds())
	s.m.requests.WithLabelValues(statusLabel(err)).Inc()
	return err
}
