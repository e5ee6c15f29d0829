# syntax=docker/dockerfile:1
#
# Static ddboutbox binaries (CGO_ENABLED=0) on a minimal base. One image holds
# relay, booking, analytics-sink and outboxctl; each compose service picks its
# binary with `entrypoint:`. The image's default entrypoint is the relay.
#
# Two ways to get the binaries into the image, chosen with --target:
#
#   runtime  (default, last stage) compiles them in a Go container:
#              docker build -t ddboutbox:local .
#
#   prebuilt copies them from bin/ in the build context, compiled on the host
#            by `make build` (CGO_ENABLED=0 go build -o bin/ ./cmd/...), for
#            machines that can run no Go image (e.g. no registry reachable):
#              make build && docker build --target prebuilt -t ddboutbox:local .
#
# Both end in the same layout on ${RUNTIME_IMAGE}. Base images are build
# arguments so that offline machines can substitute local ones:
#   GO_IMAGE       Go toolchain matching go.mod (only the runtime target)
#   RUNTIME_IMAGE  any base; the binaries need no libc, shell or CA bundle
#                  for DynamoDB Local (real AWS over HTTPS needs CA certs,
#                  which distroless/static has). `scratch` works too.
# Nothing here needs a shell in either base, so there is no RUN in the final
# stages. BuildKit (and podman/buildah) build only the stages the target
# needs, so `--target prebuilt` never pulls GO_IMAGE.
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${RUNTIME_IMAGE} AS prebuilt
# Listed one by one so that a missing binary fails the build.
COPY bin/relay bin/booking bin/analytics-sink bin/outboxctl /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/relay"]

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/ \
      ./cmd/relay ./cmd/booking ./cmd/analytics-sink ./cmd/outboxctl

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /out/ /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/relay"]
