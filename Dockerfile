# syntax=docker/dockerfile:1
#
# Image of prometheus-metrics-adapter.
#
#   docker build -t <registry>/prometheus-metrics-adapter:0.1.0 .
#
# Base image: node:24-bookworm-slim in both stages. The distroless alternative
# (gcr.io/distroless/nodejs24-debian12) has no shell and fewer packages, but its Node binary is
# /nodejs/bin/node and nothing named `node` is on PATH, so ENTRYPOINT ["node", ...] would not start
# there (its own entrypoint is the node binary). The slim image keeps Node at /usr/local/bin/node,
# has a shell for `kubectl exec` debugging, and is the same Debian as the build stage, so the
# production node_modules built here run there unchanged. npm, npx and corepack are deleted from the
# final stage; the adapter does not need them at run time.
# For reproducible releases, pin both FROM lines by digest (node:24-bookworm-slim@sha256:...).
ARG NODE_IMAGE=node:24-bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
ENV NPM_CONFIG_AUDIT=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_UPDATE_NOTIFIER=false

# Dependencies first, so this layer is reused while only sources change.
# --ignore-scripts skips two lifecycle scripts that are not wanted here:
#   * the project's own "prepare" (tsc), which would fail now because src/ is not copied yet;
#     the build runs explicitly below;
#   * the preinstall of the devDependency "node" (the npm package that ships a Node binary, used
#     by the launcher on machines whose Node is older than 22.19), which would download a second,
#     ~120 MB Node. This image already has Node 24. No other dependency has an install script.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts

COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# `npm run build` puts node_modules/.bin first on PATH. The "node" package's install script did not
# run, so it has no bin/node, and npm 11 links no node_modules/.bin/node for it. The rm guards against
# an npm that leaves a dangling link there: tsc's `#!/usr/bin/env node` must find /usr/local/bin/node.
# After pruning, the runtime can only use the base image's Node: the build fails if the "node"
# package survived `npm prune --omit=dev`.
RUN rm -f node_modules/.bin/node \
 && npm run build \
 && npm prune --omit=dev --ignore-scripts \
 && test ! -e node_modules/node \
 && test ! -L node_modules/.bin/node

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
WORKDIR /app
# Only what runs: compiled JS, the launcher, the default rules, production dependencies.
# Everything stays owned by root and read-only to the process (readOnlyRootFilesystem-friendly).
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY config ./config

# nobody:nogroup. Numeric, so that Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 65534:65534
# Smoke test at build time: starts the launcher with the image's Node (not node_modules/node).
RUN ["node", "/app/bin/prometheus-metrics-adapter.js", "--version"]

EXPOSE 6443
ENTRYPOINT ["node", "/app/bin/prometheus-metrics-adapter.js"]
