package main

import (
	"bytes"
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

func TestParseCountersReadsTheRelaysExposition(t *testing.T) {
	reg := prometheus.NewRegistry()
	delivered := prometheus.NewCounter(prometheus.CounterOpts{Name: "ddboutbox_relay_events_delivered_total", Help: "h"})
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ddboutbox_relay_requests_total", Help: "h"}, []string{"status"})
	lag := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ddboutbox_relay_lag_seconds", Help: "h"})
	seconds := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ddboutbox_relay_request_seconds", Help: "h"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "process_starts_total", Help: "h"})
	reg.MustRegister(delivered, requests, lag, seconds, other)
	delivered.Add(1500)
	requests.WithLabelValues("2xx").Add(3)
	requests.WithLabelValues("429").Inc()
	lag.Set(0.25)
	seconds.Observe(0.3)
	other.Inc()

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	enc := expfmt.NewEncoder(&body, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}

	got, err := parseCounters(body.String(), "ddboutbox_relay_")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"events_delivered_total":       1500,
		`requests_total{status="2xx"}`: 3,
		`requests_total{status="429"}`: 1,
		"lag_seconds":                  0.25,
	}
	if !maps.Equal(got, want) {
		t.Errorf("parseCounters = %v, want %v", got, want)
	}
	if _, err := parseCounters("ddboutbox_relay_x{ 1 2 3", "ddboutbox_relay_"); err == nil {
		t.Error("a malformed exposition parsed without error")
	}
}
