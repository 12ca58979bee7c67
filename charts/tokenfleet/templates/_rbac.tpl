{{/*
The operator's permissions, in one place. Least privilege: no wildcards, no secrets.
"namespacedRules" go into a ClusterRole when the operator watches every namespace, or into a
Role in each of watchNamespaces; "clusterRules" are for cluster-scoped resources only.
*/}}

{{- define "tokenfleet.rbac.namespacedRules" -}}
# The three kinds: read, and patch for kopf's progress annotations and finalizer.
- apiGroups: [tokenfleet.io]
  resources: [modeltiers, cachepolicies, inferencefleets]
  verbs: [get, list, watch, patch]
# Their status: conditions, observedGeneration, replicas, cost per token.
- apiGroups: [tokenfleet.io]
  resources: [modeltiers/status, cachepolicies/status, inferencefleets/status]
  verbs: [get, patch]
# Children carry blockOwnerDeletion owner references, which the API server only accepts from
# a client that may update the owner's finalizers.
- apiGroups: [tokenfleet.io]
  resources: [modeltiers/finalizers, cachepolicies/finalizers, inferencefleets/finalizers]
  verbs: [update]
# Children: engine, cache and router Deployments (the autoscaler patches engines' replicas).
# Removal goes through owner references (garbage collection), so no delete.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
# Children: Services of every workload, the router's ConfigMap.
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, list, watch, create, patch]
# Events on the custom resources (core/v1, as kopf and kube.py post them).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Conflict detection: an HPA or a KEDA ScaledObject on an engine Deployment means hands off.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch]
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, list, watch]
{{- if and (include "tokenfleet.peering" .) .Values.watchNamespaces }}
# kopf peering between operator pods, per watched namespace.
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end -}}

{{- define "tokenfleet.rbac.clusterRules" -}}
# kopf discovers the custom resources it serves through their CRDs.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
# kopf lists and watches namespaces in every mode: to follow them as they come and go, and with
# watchNamespaces to check the listed ones exist. Without this it retries a 403 for about half a
# minute at each start, logging errors, before it assumes they do.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- if not .Values.watchNamespaces }}
{{- if include "tokenfleet.peering" . }}
# kopf peering between operator pods, cluster-wide.
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}
{{- end -}}
