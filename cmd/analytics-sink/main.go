// Command analytics-sink serves package endpoint: a local stand-in for a
// Power BI dataset that keeps what the relay sends in memory. With -profile
// it enforces a sink profile's limits; with a webhook secret (file or
// WEBHOOK_SECRET, never a flag value) it verifies every POST's signature.
package main

import (
	"context"
	"flag"
	"os"
	"strings"
	"time"

	"github.com/ddboutbox/ddboutbox/cmd/analytics-sink/endpoint"
	"github.com/ddboutbox/ddboutbox/cmd/internal/cli"
	"github.com/ddboutbox/ddboutbox/relay"
)

// secretEnv holds the webhook secret's value when no file is given.
const secretEnv = "WEBHOOK_SECRET"

func main() {
	var o endpoint.Options
	fs := flag.NewFlagSet("analytics-sink", flag.ContinueOnError)
	addr := fs.String("addr", ":9000", "listen address")
	fs.DurationVar(&o.Latency, "latency", 0, "delay before answering each POST, e.g. 250ms")
	fs.IntVar(&o.MaxRows, "max-rows", endpoint.DefaultMaxRows, "most rows per POST; more is answered 400")
	fs.Int64Var(&o.MaxBodyBytes, "max-body-bytes", endpoint.DefaultMaxBodyBytes, "largest POST body; more is answered 413")
	fs.StringVar(&o.Profile, "profile", "", "enforce a sink profile's format, caps, rate (429) and requests in flight: "+
		strings.Join(relay.ProfileNames(), ", ")+"; empty enforces only -max-rows and -max-body-bytes")
	fs.Float64Var(&o.FailureRate, "failure-rate", 0, "fraction of valid POSTs answered 503 at random, 0 to 1")
	secretFile := fs.String("webhook-secret-file", "", "file holding the Standard Webhooks secret (whsec_<base64>, or raw text); "+
		"when it or env "+secretEnv+" is set, unsigned POSTs are answered 401")
	logger := cli.Log(fs, os.Stderr)
	cli.Main("analytics-sink", func(ctx context.Context) error {
		if err := cli.Parse(fs, os.Args[1:]); err != nil {
			return err
		}
		if err := cli.NoArgs(fs); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return cli.Usage(err)
		}
		var err error
		if o.Secret, err = relay.LoadSecret(*secretFile, secretEnv); err != nil {
			return cli.Usage(err)
		}
		if o.Logger, err = logger(); err != nil {
			return err
		}
		o.Logger.Info("limits", "profile", o.Profile, "failure_rate", o.FailureRate, "latency", o.Latency,
			"verify_signatures", len(o.Secret) > 0)
		// The grace covers POSTs still sleeping out -latency.
		return cli.Serve(ctx, *addr, endpoint.New(o), o.Logger, 10*time.Second+o.Latency)
	})
}
