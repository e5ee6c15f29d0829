# syntax=docker/dockerfile:1
# Multi-stage build of every ddboutbox binary as a static executable.
# Base images are build arguments so that machines without a registry can
# substitute locally built ones (see README "Containers").
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/ ./cmd/...

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/ /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/relay"]
