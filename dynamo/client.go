// Package dynamo is the DynamoDB and DynamoDB Streams plumbing shared by the
// outbox library, the relay and the binaries: client construction, table
// creation, stream shard discovery and the relay's lease/checkpoint table.
package dynamo

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
)

// DefaultLocalRegion is used when an endpoint is set and no region is
// configured: DynamoDB Local ignores the region, but the SDK refuses to sign
// without one.
const DefaultLocalRegion = "us-east-1"

// Config selects which DynamoDB the clients talk to.
type Config struct {
	// Endpoint overrides the DynamoDB and Streams endpoint, for DynamoDB
	// Local (e.g. http://127.0.0.1:8000). Empty means real AWS, resolved
	// from the standard AWS environment.
	Endpoint string
	// Region overrides AWS_REGION / the shared config. Empty means the
	// standard chain, or DefaultLocalRegion when Endpoint is set.
	Region string
}

// Validate rejects an endpoint the SDK accepts but can never reach: without
// a scheme or host (127.0.0.1:8000) every call fails to resolve, which a
// relay would retry forever and a server would answer with 500s.
func (c Config) Validate() error {
	if c.Endpoint == "" {
		return nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("endpoint %q is not an absolute http or https URL with a host, e.g. http://127.0.0.1:8000", c.Endpoint)
	}
	return nil
}

// Clients holds the two SDK clients the product uses. Both share one
// aws.Config, so retries of throttled calls, signing and credentials come
// from the SDK's standard chain.
type Clients struct {
	DB      *dynamodb.Client
	Streams *dynamodbstreams.Client
}

// NewClients builds DynamoDB and DynamoDB Streams clients from cfg and the
// standard AWS environment. It fails if cfg does not Validate. With an
// Endpoint, the region defaults to DefaultLocalRegion and, where the
// environment and the shared AWS files hold no credentials, a dummy key
// signs (see credentialsFound).
func NewClients(ctx context.Context, cfg Config) (*Clients, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dynamo config: %w", err)
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Endpoint != "" {
		// With an endpoint of its own the instance metadata service is not
		// asked: where there is none (a laptop, CI) the probe below would
		// wait for its timeouts on every start.
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Endpoint != "" {
		if awsCfg.Region == "" {
			awsCfg.Region = DefaultLocalRegion
		}
		if !credentialsFound(ctx, awsCfg) {
			awsCfg.Credentials = credentials.NewStaticCredentialsProvider("local", "local", "")
		}
	}
	return &Clients{
		DB: dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
			if cfg.Endpoint != "" {
				o.BaseEndpoint = aws.String(cfg.Endpoint)
				// DynamoDB Local sends an X-Amz-Crc32 that does not match
				// some bodies; the SDK then logs a warning per call.
				o.DisableValidateResponseChecksum = true
			}
		}),
		Streams: dynamodbstreams.NewFromConfig(awsCfg, func(o *dynamodbstreams.Options) {
			if cfg.Endpoint != "" {
				o.BaseEndpoint = aws.String(cfg.Endpoint)
			}
		}),
	}, nil
}

// credentialsProbe bounds the search for credentials with an endpoint of
// its own (a credential_process or SSO refresh of the default profile).
const credentialsProbe = 5 * time.Second

// credentialsFound reports whether the standard chain (environment, shared
// config and credentials files, web identity, container credentials) has
// credentials. DynamoDB Local accepts any key, but the SDK must sign with
// one: without any, a dummy key is used. Credentials that are there (an
// endpoint that is real DynamoDB: a VPC endpoint, a proxy) are kept, and
// one that a named profile or key fails to give is left to fail loudly on
// the first call rather than be signed over with the dummy.
func credentialsFound(ctx context.Context, awsCfg aws.Config) bool {
	if os.Getenv("AWS_ACCESS_KEY_ID") != "" || os.Getenv("AWS_PROFILE") != "" {
		return true
	}
	if awsCfg.Credentials == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, credentialsProbe)
	defer cancel()
	_, err := awsCfg.Credentials.Retrieve(ctx)
	return err == nil
}
