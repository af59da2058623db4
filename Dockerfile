# syntax=docker/dockerfile:1.7
#
# regcreds container image: a release build of the `regcreds` binary on distroless, non-root.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg CREATED=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ) \
#     -t ghcr.io/regcreds/regcreds:0.1.0 --push .
#
# Without Docker, `cargo xtask image` builds the same image (same user, entrypoint, command, port and
# labels, with the same build-arg values) from this machine's Debian files; tests/tests/image.rs fails
# when the two disagree, so change the final stage and xtask's image (tests/src/image/) together.
#
# The builder runs on the build machine's platform and cross-compiles for the target platform (no
# QEMU): aws-lc-sys, the only C dependency, needs just a C compiler for the target.
# The binary links glibc and libgcc_s, so the runtime is distroless "cc" (glibc, libgcc, CA
# certificates), not distroless "static". Both are Debian 12, like the rust:*-bookworm builder.

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS builder
ARG TARGETARCH
ARG BUILDARCH
WORKDIR /src

# Rust target, and the cross C toolchain from Debian when the target differs from the build machine.
# Cross compilers are taken as Debian ships them for this release, hence no version pins.
# hadolint ignore=DL3008
RUN <<EOT
set -eu
case "$TARGETARCH" in
  amd64) triple=x86_64-unknown-linux-gnu;  pkg=gcc-x86-64-linux-gnu;  prefix=x86_64-linux-gnu
         cargo_var=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER;  cc_suffix=x86_64_unknown_linux_gnu ;;
  arm64) triple=aarch64-unknown-linux-gnu; pkg=gcc-aarch64-linux-gnu; prefix=aarch64-linux-gnu
         cargo_var=CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER; cc_suffix=aarch64_unknown_linux_gnu ;;
  *) echo "unsupported TARGETARCH=$TARGETARCH (amd64 and arm64 are)" >&2; exit 1 ;;
esac
echo "$triple" > /rust-target
: > /cross-env
if [ "$TARGETARCH" != "$BUILDARCH" ]; then
  apt-get update
  apt-get install -y --no-install-recommends "$pkg" "libc6-dev-$TARGETARCH-cross"
  rm -rf /var/lib/apt/lists/*
  rustup target add "$triple"
  {
    echo "export $cargo_var=$prefix-gcc"
    echo "export CC_$cc_suffix=$prefix-gcc"
    echo "export AR_$cc_suffix=$prefix-ar"
  } > /cross-env
fi
EOT

COPY . .

# The crate registry and target directory live in cache mounts between builds; the binary is copied
# out of the cache mount in the same step. --locked: Cargo.lock must be committed and current.
RUN --mount=type=cache,target=/usr/local/cargo/registry,id=cargo-registry \
    --mount=type=cache,target=/usr/local/cargo/git,id=cargo-git \
    --mount=type=cache,target=/src/target,id=regcreds-target-${TARGETARCH},sharing=locked \
    <<EOT
set -eu
. /cross-env
triple=$(cat /rust-target)
cargo build --release --locked -p regcreds --target "$triple"
mkdir -p /out
cp "target/$triple/release/regcreds" /out/regcreds
EOT

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED
LABEL org.opencontainers.image.title="regcreds" \
      org.opencontainers.image.description="Mints container registry credentials and keeps a pull Secret in every namespace" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/regcreds" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=builder --chown=0:0 --chmod=0755 /out/regcreds /regcreds
# 65532 = "nonroot" in distroless; numeric so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/regcreds"]
# Manifests written for upmc registry-creds or imagepullsecret-patcher pass no args: they get `run`.
CMD ["run"]
