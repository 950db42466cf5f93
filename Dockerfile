# Pylon's images for those who build with Docker (or Podman, Buildah):
#
#   docker build --target controller -t ghcr.io/pylon-dev/pylon-controller:0.1.0 .
#   docker build --target dataplane  -t ghcr.io/pylon-dev/pylon-dataplane:0.1.0 .
#
# The same layout as `make images` (scripts/images.sh, which needs no daemon and is what the
# tests check): the static release binary at /usr/local/bin/pylon-<component>, the CA
# certificates, /etc/passwd and /etc/group naming the non-root user pylon (65532), nothing
# else. The digests differ from make images' (Docker writes its own tar and config).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# One package per build, as scripts/images.sh does.
RUN for c in controller dataplane; do \
      dir=$(bash scripts/build.sh release -p pylon-$c | tail -n 1) \
      && install -D -m 0755 "$dir/pylon-$c" /out/$c/usr/local/bin/pylon-$c || exit 1; \
    done \
 && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /base/etc/ssl/certs/ca-certificates.crt \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\npylon:x:65532:65532:pylon:/nonexistent:/sbin/nologin\n' > /base/etc/passwd \
 && printf 'root:x:0:\npylon:x:65532:\n' > /base/etc/group

FROM scratch AS base
COPY --from=build /base/ /
ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
LABEL org.opencontainers.image.source="https://github.com/pylon-dev/pylon" \
      org.opencontainers.image.licenses="Apache-2.0"

FROM base AS controller
COPY --from=build /out/controller/ /
LABEL org.opencontainers.image.title="pylon-controller"
ENTRYPOINT ["/usr/local/bin/pylon-controller"]

FROM base AS dataplane
COPY --from=build /out/dataplane/ /
LABEL org.opencontainers.image.title="pylon-dataplane"
ENTRYPOINT ["/usr/local/bin/pylon-dataplane"]
