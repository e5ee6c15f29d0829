package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestRunAll(t *testing.T) {
	mainErr, listenErr, shutdownErr := errors.New("main failed"), errors.New("listen: address in use"), errors.New("shutdown: deadline exceeded")
	tests := []struct {
		name   string
		main   func(context.Context) error
		helper func(context.Context) error
		want   []error // each must be in the result; none: nil
	}{
		{"clean stop, a helper's shutdown fails after it", func(context.Context) error { return nil },
			func(ctx context.Context) error { <-ctx.Done(); return shutdownErr }, nil},
		{"main fails", func(context.Context) error { return mainErr },
			func(ctx context.Context) error { <-ctx.Done(); return nil }, []error{mainErr}},
		{"main fails, a helper's shutdown too", func(context.Context) error { return mainErr },
			func(ctx context.Context) error { <-ctx.Done(); return shutdownErr }, []error{mainErr}},
		{"a helper fails first, main stops cleanly", func(ctx context.Context) error { <-ctx.Done(); return nil },
			func(context.Context) error { return listenErr }, []error{listenErr}},
		{"a helper fails first, main fails stopping", func(ctx context.Context) error { <-ctx.Done(); return mainErr },
			func(context.Context) error { return listenErr }, []error{mainErr, listenErr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := RunAll(t.Context(), tt.main, tt.helper)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("RunAll = %v, want nil", err)
				}
				return
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Fatalf("RunAll = %v, want it to hold %v", err, w)
				}
			}
			if errors.Is(err, shutdownErr) {
				t.Fatalf("RunAll = %v: a helper's shutdown after main returned is not the result", err)
			}
		})
	}
}

// A request still running when the grace ends is cut off; Serve itself
// stops cleanly.
func TestServeCutsOffWhatOutlastsTheGrace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	started := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(http.ResponseWriter, *http.Request) {
		close(started)
		time.Sleep(2 * time.Second)
	})
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, addr, mux, slog.New(slog.NewTextHandler(io.Discard, nil)), 100*time.Millisecond)
	}()
	go func() {
		for {
			resp, err := http.Get("http://" + addr + "/slow")
			if err == nil {
				resp.Body.Close()
				return
			}
			select {
			case <-started:
				return
			case <-time.After(10 * time.Millisecond): // not listening yet
			}
		}
	}()
	<-started
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}
