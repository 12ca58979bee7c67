{{/*
The operator's permissions, in one place. Least privilege: no wildcards, no secrets.
"namespacedRules" go into a ClusterRole when the operator watches every namespace, or into a
Role in each of watchNamespaces; "clusterRules" are for cluster-scoped resources only.
*/}}

{{- define "tokenfleet.rbac.namespacedRules" -}}
# The three kinds: read, and patch for kopf's finalizer and progress annotations.
- apiGroups: [tokenfleet.io]
  resources: [modeltiers, cachepolicies, inferencefleets]
  verbs: [get, list, watch, patch]
# Their status: conditions, observedGeneration, replicas, cost per token.
- apiGroups: [tokenfleet.io]
  resources: [modeltiers/status, cachepolicies/status, inferencefleets/status]
  verbs: [get, patch, update]
# Children: engine, cache and router Deployments (replicas of engines belong to the autoscaler).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, patch, update]
# Children: Services of every workload, the router's ConfigMap.
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, list, watch, create, patch, update, delete]
# Events on the custom resources (both APIs: kopf and the kubernetes client differ).
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
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
{{- if not .Values.watchNamespaces }}
# Watching every namespace: kopf follows namespaces as they come and go.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- if include "tokenfleet.peering" . }}
# kopf peering between operator pods, cluster-wide.
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}
{{- end -}}
