# syntax=docker/dockerfile:1
# Static, non-root image of mimi-gateway. Build: docker build --build-arg VERSION=v0.1.0 -t mimi-gateway .
# Run:   docker run -v mimi-data:/data -p 127.0.0.1:9464:9464 mimi-gateway

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -tags goolm -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/mimi-gateway ./cmd/mimi-gateway \
 && mkdir -p /out/data /out/tmp && chmod 1777 /out/tmp

# The binary is static: the image holds only it, the CA bundle (for TLS to partners and NATS) and
# the data directory. No shell, no package manager; UID 65532 owns nothing but /data and /tmp.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/mimi-gateway /usr/bin/mimi-gateway
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/tmp /tmp
USER 65532:65532
# These override a mounted configuration file (environment beats file); set them to change.
ENV MIMI_GATEWAY_DATA_DIR=/data \
    MIMI_GATEWAY_ADMIN_ADDRESS=0.0.0.0:9464 \
    MIMI_GATEWAY_LOG_FORMAT=json
VOLUME ["/data"]
# 9464: admin (/livez, /readyz, /metrics); 8443: the MIMI listener when mimi.address is set.
EXPOSE 9464 8443
HEALTHCHECK --interval=30s --timeout=6s --start-period=60s --retries=3 \
    CMD ["/usr/bin/mimi-gateway", "healthcheck"]
ENTRYPOINT ["/usr/bin/mimi-gateway"]
CMD ["run"]
