{{/* The objects' base name: the release name, with the chart name unless it already has it. */}}
{{- define "vllm-probe.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vllm-probe.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: monitoring
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels that select the daemon's pods: the vLLM pods in sidecar mode, the fleet pods otherwise. */}}
{{- define "vllm-probe.podSelector" -}}
{{- if eq .Values.mode "sidecar" -}}
{{ toYaml .Values.sidecar.podLabels }}
{{- else -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- end -}}

{{/* The daemon config for the mode, with `listen` from .Values.port. */}}
{{- define "vllm-probe.config" -}}
{{- $config := ternary .Values.sidecar.config .Values.fleet.config (eq .Values.mode "sidecar") | deepCopy -}}
{{- $_ := set $config "listen" (printf "0.0.0.0:%d" (int .Values.port)) -}}
{{- $secret := ternary .Values.sidecar.apiKeySecret .Values.fleet.apiKeySecret (eq .Values.mode "sidecar") -}}
{{- if and $secret.name (eq .Values.mode "sidecar") -}}
{{- $target := get $config "target" | default dict -}}
{{- $_ := set $target "api_key_env" "VLLM_API_KEY" -}}
{{- $_ := set $config "target" $target -}}
{{- end -}}
{{ toYaml $config }}
{{- end -}}

{{/* The vllm-probe container, the same in the sidecar patch and the fleet Deployment. */}}
{{- define "vllm-probe.container" -}}
{{- $secret := ternary .Values.sidecar.apiKeySecret .Values.fleet.apiKeySecret (eq .Values.mode "sidecar") -}}
name: vllm-probe
image: {{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["serve", "--config", "/etc/vllm-probe/config.yaml"]
env:
{{- if $secret.name }}
  - name: VLLM_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ $secret.name }}
        key: {{ $secret.key }}
{{- end }}
{{- if eq .Values.mode "sidecar" }}
  # nvidia-smi from the NVIDIA container toolkit, for the GPU metrics (docs/deploy.md).
  - name: NVIDIA_VISIBLE_DEVICES
    value: all
  - name: NVIDIA_DRIVER_CAPABILITIES
    value: utility
{{- end }}
ports:
  - name: vllm-probe
    containerPort: {{ .Values.port }}
    protocol: TCP
livenessProbe:
  httpGet:
    path: /healthz
    port: vllm-probe
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: vllm-probe
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 3
resources:
{{ toYaml (ternary .Values.sidecar.resources .Values.fleet.resources (eq .Values.mode "sidecar")) | indent 2 }}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
volumeMounts:
  - name: vllm-probe-config
    mountPath: /etc/vllm-probe
    readOnly: true
  - name: vllm-probe-tmp
    mountPath: /tmp
{{- end -}}

{{- define "vllm-probe.volumes" -}}
- name: vllm-probe-config
  configMap:
    name: {{ include "vllm-probe.fullname" . }}-config
- name: vllm-probe-tmp
  emptyDir:
    sizeLimit: 16Mi
{{- end -}}
