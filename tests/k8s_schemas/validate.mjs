// Validate Kubernetes manifests offline against the schemas of the Kubernetes API and of the
// CRDs the generated project uses (Argo Rollouts, External Secrets, Gateway API, Prometheus
// operator), as compiled into the kubernetes-models packages.
//
//   node validate.mjs FILE.yaml...     exit 0 when every document is valid, 1 otherwise
//
// A kind with no known schema is an error, never a silent pass.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const PACKAGES = {
  "argoproj.io": "@kubernetes-models/argo-rollouts",
  "external-secrets.io": "@kubernetes-models/external-secrets",
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

function modulePath(apiVersion, kind) {
  if (!apiVersion.includes("/")) return `kubernetes-models/${apiVersion}/${kind}`;
  const group = apiVersion.split("/")[0];
  const pkg = PACKAGES[group] ?? (group.includes(".") && !group.endsWith(".k8s.io") ? null : "kubernetes-models");
  return pkg ? `${pkg}/${apiVersion}/${kind}` : null;
}

let failures = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const data = doc.toJS();
    if (data === null) continue;
    const where = `${file}: ${data.kind ?? "?"} ${data.metadata?.name ?? "?"}`;
    const path = data.apiVersion && data.kind ? modulePath(data.apiVersion, data.kind) : null;
    let Model;
    try {
      Model = path && (await import(path))[data.kind];
    } catch {
      Model = undefined;
    }
    if (!Model) {
      console.log(`FAIL ${where}: no schema for ${data.apiVersion} ${data.kind}`);
      failures += 1;
      continue;
    }
    try {
      new Model(data).validate();
      checked += 1;
    } catch (error) {
      console.log(`FAIL ${where}: ${error.message}`);
      failures += 1;
    }
  }
}
console.log(`${checked} valid, ${failures} invalid`);
process.exit(failures === 0 && checked > 0 ? 0 : 1);
