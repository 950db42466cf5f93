{{/* Name prefix of every resource: "pylon" unless nameOverride says otherwise. */}}
{{- define "pylon.name" -}}
{{- default "pylon" .Values.nameOverride | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* Controller resources: Deployment, Service (the data planes' config endpoint), ServiceAccount. */}}
{{- define "pylon.controller" -}}
{{- printf "%s-controller" (include "pylon.name" .) -}}
{{- end -}}

{{- define "pylon.labels" -}}
app.kubernetes.io/name: {{ include "pylon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "pylon.controllerSelector" -}}
app.kubernetes.io/name: {{ include "pylon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* Secret holding the config CA (created by the controller, not by the chart). */}}
{{- define "pylon.configCASecret" -}}
{{- default (printf "%s-config-ca" (include "pylon.name" .)) .Values.controller.configTLS.caSecretName -}}
{{- end -}}

{{/* The URL data planes dial: the controller Service, https unless TLS is turned off. */}}
{{- define "pylon.configURL" -}}
{{- printf "%s://%s.%s.svc:%d" (ternary "https" "http" .Values.controller.configTLS.enabled) (include "pylon.controller" .) .Release.Namespace (int .Values.controller.configPort) -}}
{{- end -}}

{{- define "pylon.controllerImage" -}}
{{- printf "%s:%s" .Values.controller.image.repository (default .Chart.AppVersion .Values.controller.image.tag) -}}
{{- end -}}

{{- define "pylon.dataplaneImage" -}}
{{- printf "%s:%s" .Values.dataplane.image.repository (default .Chart.AppVersion .Values.dataplane.image.tag) -}}
{{- end -}}

{{/* Checks across values that the schema cannot express; a bad combination fails the render. */}}
{{- define "pylon.validate" -}}
{{- if and (gt (int .Values.controller.replicas) 1) (not .Values.controller.leaderElection.enabled) -}}
{{- fail (printf "controller.replicas is %d but controller.leaderElection.enabled is false: replicas would fight over status and infrastructure; enable leader election or use 1 replica" (int .Values.controller.replicas)) -}}
{{- end -}}
{{- if eq (int .Values.controller.configPort) (int .Values.controller.adminPort) -}}
{{- fail (printf "controller.configPort and controller.adminPort are both %d; they must differ" (int .Values.controller.configPort)) -}}
{{- end -}}
{{- if and .Values.controller.podDisruptionBudget.enabled (gt (int .Values.controller.replicas) 1) (ge (int .Values.controller.podDisruptionBudget.minAvailable) (int .Values.controller.replicas)) -}}
{{- fail (printf "controller.podDisruptionBudget.minAvailable (%d) must be below controller.replicas (%d), or no replica could ever be evicted" (int .Values.controller.podDisruptionBudget.minAvailable) (int .Values.controller.replicas)) -}}
{{- end -}}
{{- end -}}
