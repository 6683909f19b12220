{{- define "mimi-gateway.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mimi-gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mimi-gateway.labels" -}}
app.kubernetes.io/name: {{ include "mimi-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "mimi-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mimi-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mimi-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mimi-gateway.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The pod template shared by the StatefulSet (embedded) and the Deployment (external). */}}
{{- define "mimi-gateway.podTemplate" -}}
metadata:
  labels:
    {{- include "mimi-gateway.selectorLabels" . | nindent 4 }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "mimi-gateway.serviceAccountName" . }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  initContainers:
    - name: validate-config
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["config", "validate", "/etc/mimi-gateway/config.yaml"]
      env:
        {{- include "mimi-gateway.env" . | nindent 8 }}
      {{- with .Values.envFromSecret }}
      envFrom:
        - secretRef: {name: {{ . }}}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "mimi-gateway.volumeMounts" . | nindent 8 }}
  containers:
    - name: gateway
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["run", "--config", "/etc/mimi-gateway/config.yaml"]
      env:
        {{- include "mimi-gateway.env" . | nindent 8 }}
      {{- with .Values.envFromSecret }}
      envFrom:
        - secretRef: {name: {{ . }}}
      {{- end }}
      ports:
        - {name: admin, containerPort: 9464}
        {{- if (.Values.config.mimi).address }}
        - {name: mimi, containerPort: {{ .Values.service.mimiPort }}}
        {{- end }}
      startupProbe:
        httpGet: {path: /readyz, port: admin}
        periodSeconds: 2
        failureThreshold: 150
      livenessProbe:
        httpGet: {path: /livez, port: admin}
        periodSeconds: 10
      readinessProbe:
        httpGet: {path: /readyz, port: admin}
        periodSeconds: 5
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "mimi-gateway.volumeMounts" . | nindent 8 }}
  volumes:
    - name: config
      configMap: {name: {{ include "mimi-gateway.fullname" . }}}
    - name: tmp
      emptyDir: {}
    {{- if eq .Values.mode "external" }}
    # External mode keeps its state in PostgreSQL and NATS; /data only holds caches.
    - name: data
      emptyDir: {}
    {{- with .Values.external.postgres.dsnSecret }}
    - name: postgres
      secret: {secretName: {{ . }}}
    {{- end }}
    {{- with .Values.external.assets.existingClaim }}
    # The attachment store, shared by every replica (whichever leads serves it).
    - name: assets
      persistentVolumeClaim: {claimName: {{ . }}}
    {{- end }}
    {{- with .Values.external.nats.credsSecret }}
    - name: nats-creds
      secret: {secretName: {{ . }}}
    {{- end }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "mimi-gateway.env" -}}
- {name: MIMI_GATEWAY_DATA_DIR, value: /data}
- {name: MIMI_GATEWAY_ADMIN_ADDRESS, value: "0.0.0.0:9464"}
- {name: MIMI_GATEWAY_BUS_MODE, value: {{ .Values.mode | quote }}}
{{- if eq .Values.mode "external" }}
- {name: MIMI_GATEWAY_BUS_EXTERNAL_URLS, value: {{ .Values.external.nats.urls | toJson | quote }}}
- {name: MIMI_GATEWAY_BUS_EXTERNAL_REPLICAS, value: {{ .Values.external.nats.streamReplicas | quote }}}
{{- if .Values.external.nats.credsSecret }}
- {name: MIMI_GATEWAY_BUS_EXTERNAL_CREDS_FILE, value: /secrets/nats/nats.creds}
{{- end }}
- {name: MIMI_GATEWAY_STORE_DRIVER, value: postgres}
- {name: MIMI_GATEWAY_STORE_POSTGRES_DSN_FILE, value: {{ printf "/secrets/postgres/%s" .Values.external.postgres.dsnSecretKey | quote }}}
# Leader election (docs/operations.md): the leader's lease, and where the other replicas
# forward partners' connections while this pod leads.
- name: POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
- {name: MIMI_GATEWAY_HA_ADVERTISE_ADDRESS, value: {{ printf "$(POD_IP):%v" .Values.service.mimiPort | quote }}}
- {name: MIMI_GATEWAY_HA_LEASE_TTL, value: {{ .Values.external.leaseTTL | quote }}}
{{- if .Values.external.assets.existingClaim }}
- {name: MIMI_GATEWAY_MIMI_ASSETS_DIR, value: /assets}
{{- end }}
{{- else }}
- {name: MIMI_GATEWAY_STORE_DRIVER, value: sqlite}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "mimi-gateway.volumeMounts" -}}
- {name: config, mountPath: /etc/mimi-gateway, readOnly: true}
- {name: tmp, mountPath: /tmp}
- {name: data, mountPath: /data}
{{- if eq .Values.mode "external" }}
{{- if .Values.external.postgres.dsnSecret }}
- {name: postgres, mountPath: /secrets/postgres, readOnly: true}
{{- end }}
{{- if .Values.external.assets.existingClaim }}
- {name: assets, mountPath: /assets}
{{- end }}
{{- if .Values.external.nats.credsSecret }}
- {name: nats-creds, mountPath: /secrets/nats, readOnly: true}
{{- end }}
{{- end }}
{{- end -}}
