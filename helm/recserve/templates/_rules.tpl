{{/*
Recording rules + alerts. The SLO alerts compare one recording rule with a threshold from
.Values.slo; every alert selects series that exist while healthy, so `make dashboards-check`
can require data behind each alert. `component` is the target label the ServiceMonitor adds
(gateway, embedding_store, candidates, ranking). Server-side errors are the gRPC codes a
client cannot fix. `or ... * 0` yields 0 (not "no data") while a counter such as
recserve_degraded_total has no series yet.
*/}}
{{- define "recserve.ruleGroups" -}}
{{- $ns := printf "namespace=%q" .Release.Namespace -}}
{{- $errors := "UNKNOWN|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS" -}}
groups:
  - name: recserve.recording
    interval: 30s
    rules:
      - record: recserve:rpc_requests:rate5m
        expr: sum by (namespace, component) (rate(recserve_rpc_total{ {{- $ns -}} }[5m]))
      - record: recserve:rpc_errors:rate5m
        expr: |-
          sum by (namespace, component) (rate(recserve_rpc_total{ {{- $ns }}, grpc_code=~"{{ $errors }}"}[5m]))
          or sum by (namespace, component) (rate(recserve_rpc_total{ {{- $ns -}} }[5m])) * 0
      - record: recserve:rpc_error_ratio:rate5m
        expr: recserve:rpc_errors:rate5m / recserve:rpc_requests:rate5m > 0 or recserve:rpc_errors:rate5m * 0
      - record: recserve:rpc_latency_seconds:p99_5m
        expr: histogram_quantile(0.99, sum by (namespace, component, le) (rate(recserve_rpc_duration_seconds_bucket{ {{- $ns -}} }[5m])))
      - record: recserve:stage_latency_seconds:p99_5m
        expr: histogram_quantile(0.99, sum by (namespace, stage, le) (rate(recserve_stage_duration_seconds_bucket{ {{- $ns -}} }[5m])))
      # Fallbacks caused by a failing dependency; cold_start (unknown user or items) is
      # expected behaviour, not degradation of the service.
      - record: recserve:degraded:rate5m
        expr: |-
          sum by (namespace) (rate(recserve_degraded_total{ {{- $ns }}, reason!="cold_start"}[5m]))
          or sum by (namespace) (rate(recserve_rpc_total{ {{- $ns }}, component="gateway"}[5m])) * 0
      - record: recserve:degraded_ratio:rate5m
        expr: |-
          recserve:degraded:rate5m
          / on (namespace) sum by (namespace) (recserve:rpc_requests:rate5m{component="gateway"}) > 0
          or recserve:degraded:rate5m * 0
  - name: recserve.slo
    rules:
      - alert: RecserveLatencyP99High
        expr: recserve:rpc_latency_seconds:p99_5m{ {{- $ns }}, component="gateway"} > {{ .Values.slo.p99Seconds }}
        for: {{ .Values.slo.for }}
        labels:
          severity: page
        annotations:
          summary: recserve gateway p99 latency above the {{ mulf .Values.slo.p99Seconds 1000 }} ms budget
          description: {{ printf "p99 is {{ $value | humanizeDuration }} in %s (budget %vs). Check the HPA (in-flight per pod vs target) and the per-stage dashboard." .Release.Namespace .Values.slo.p99Seconds | quote }}
      - alert: RecserveErrorRatioHigh
        expr: recserve:rpc_error_ratio:rate5m{ {{- $ns -}} } > {{ .Values.slo.errorRatio }}
        for: {{ .Values.slo.for }}
        labels:
          severity: page
        annotations:
          summary: recserve server-side error ratio above {{ mulf .Values.slo.errorRatio 100 }}%
          description: {{ "{{ $labels.component }} returns server errors on {{ $value | humanizePercentage }} of RPCs." | quote }}
      - alert: RecserveDegradedRatioHigh
        expr: recserve:degraded_ratio:rate5m{ {{- $ns -}} } > {{ .Values.slo.degradedRatio }}
        for: {{ .Values.slo.for }}
        labels:
          severity: warning
        annotations:
          summary: recserve serves fallback responses (dependency down) above {{ mulf .Values.slo.degradedRatio 100 }}%
          description: {{ "{{ $value | humanizePercentage }} of gateway responses are degraded; see recserve_degraded_total by reason." | quote }}
      - alert: RecserveNoTraffic
        expr: recserve:rpc_requests:rate5m{ {{- $ns }}, component="gateway"} == 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: recserve gateway receives no requests
          description: {{ printf "No Recommend traffic reaches the gateway in %s for 10 minutes." .Release.Namespace | quote }}
      - alert: RecserveGatewayAbsent
        expr: absent(recserve_rpc_total{ {{- $ns }}, component="gateway"})
        for: 10m
        labels:
          severity: page
        annotations:
          summary: no recserve gateway is being scraped
          description: {{ printf "Prometheus sees no recserve_rpc_total from the gateway in %s: pods down, or scraping broken." .Release.Namespace | quote }}
      - alert: RecserveModelLoadFailing
        expr: max by (namespace, component, pod) (recserve_model_load_failing{ {{- $ns -}} }) == 1
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: a recserve pod cannot load the active model version
          description: {{ `{{ $labels.component }} pod {{ $labels.pod }} has not loaded the active model version for 5 minutes and serves the previous one; see its logs and the bundle volume. Why the state gauge recserve_model_load_failing and not increase(recserve_model_reloads_total{outcome="error"}[15m]) > 0: one failed attempt that the next retry fixes keeps that expression true for 15 minutes, so it would alert on transient failures and long after recovery; the gauge is 1 exactly while loading fails.` | quote }}
{{- end -}}
