// Package integration runs ddboutbox end to end against a real DynamoDB
// Local: in a container started by testcontainers-go, or the instance at
// DYNAMODB_ENDPOINT when that is set. There is no skip path: if DynamoDB
// Local cannot start, every test fails.
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/testcontainers/testcontainers-go"
	tcdynamodb "github.com/testcontainers/testcontainers-go/modules/dynamodb"

	"github.com/ddboutbox/ddboutbox/dynamo"
)

// defaultImage is the pinned DynamoDB Local image; DYNAMODB_LOCAL_IMAGE
// overrides it (CI builds one offline, see .ci/provision.sh).
const defaultImage = "amazon/dynamodb-local:3.3.0"

var (
	// ddbEndpoint is the DynamoDB Local every test talks to.
	ddbEndpoint string
	clients     *dynamo.Clients
	// relayBin is cmd/relay built for the tests that run it as a process.
	relayBin string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// dynamoImage is the DynamoDB Local image containers are started from.
func dynamoImage() string {
	if image := os.Getenv("DYNAMODB_LOCAL_IMAGE"); image != "" {
		return image
	}
	return defaultImage
}

func run(m *testing.M) int {
	ctx := context.Background()
	ddbEndpoint = os.Getenv("DYNAMODB_ENDPOINT")
	if ddbEndpoint == "" {
		image := dynamoImage()
		// -sharedDb: every client sees the same tables whatever its
		// credentials and region. Not tcdynamodb.WithSharedDB, which also
		// reuses a container by name across unrelated runs.
		c, err := tcdynamodb.Run(ctx, image, testcontainers.WithCmdArgs("-inMemory", "-sharedDb"))
		if c != nil {
			defer func() { _ = testcontainers.TerminateContainer(c) }()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "integration: FAIL: cannot start DynamoDB Local container %s: %v\n", image, err)
			return 1
		}
		hostPort, err := c.ConnectionString(ctx)
		if err != nil {
			fmt.Fprintf(os.Stderr, "integration: FAIL: container endpoint: %v\n", err)
			return 1
		}
		ddbEndpoint = "http://" + hostPort
		fmt.Printf("integration: DynamoDB Local container %s at %s\n", image, ddbEndpoint)
	} else {
		fmt.Printf("integration: DynamoDB Local at DYNAMODB_ENDPOINT=%s\n", ddbEndpoint)
	}
	var err error
	if clients, err = dynamo.NewClients(ctx, dynamo.Config{Endpoint: ddbEndpoint}); err != nil {
		fmt.Fprintf(os.Stderr, "integration: FAIL: clients: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "ddboutbox-bin")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: FAIL: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	relayBin = filepath.Join(dir, "relay")
	build := exec.Command("go", "build", "-o", relayBin, "../cmd/relay")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: FAIL: build relay: %v\n", err)
		return 1
	}
	return m.Run()
}
