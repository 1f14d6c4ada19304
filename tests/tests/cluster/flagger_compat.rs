//! Flagger's documented Canaries and MetricTemplates, moved over by changing their apiVersion and
//! nothing else: each is applied with the real kubectl (`apply --server-side --validate=strict`,
//! which refuses any field the CRD does not declare), read back into Eddy's Rust types without
//! losing a field, and `compat::ignored_fields` names what of it Eddy does not act on. Then the
//! route options Flagger users write (`service.match`, `retries`, `headers`, `corsPolicy`,
//! `rewrite`, `backendTimeout`, `mirror`, `appProtocol`, `headless`, `portDiscovery`) go through
//! the routers and the generated Services into the published Istio and Gateway API CRDs and the
//! built-in Service API, which must accept them whole.
//!
//! The examples are Flagger's documentation (docs.flagger.app) as published, comments included.
//! They name the namespaces `test` and `flagger-system`; the test creates those it does not find
//! and deletes them afterwards, and applies one example at a time because they share names.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use eddy_api::progressive::{Canary, MetricTemplate, RequestMatch, RouterKind, StringMatch};
use eddy_tests::{
    cluster, cluster_namespace, create, delete_namespace, eventually, install_crds, kubeconfig_path, repo_root,
};
use progressive_controller::compat::{ignored_fields, ignored_template_fields};
use progressive_controller::release::Release;
use progressive_controller::router::{self, Desired, RouterError, RouterInputs, Routes};

use crate::routers::install_peer_crds;

const FLAGGER_API_VERSION: &str = "apiVersion: flagger.app/v1beta1";
/// Held by each test that applies the documentation's examples: they share the namespaces the
/// examples name, which the one that created them deletes at its end.
static DOCUMENTED_NAMESPACES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What `ignored_fields` says of Flagger's Gateway API examples, which name no provider.
const GATEWAY_API_WITHOUT_PROVIDER: &[&str] = &["service.gatewayRefs"];
const EDDY_API_VERSION: &str = "apiVersion: progressive.eddy.dev/v1alpha1";

/// The Istio tutorial's Canary (docs.flagger.app/tutorials/istio-progressive-delivery).
const ISTIO_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  # the maximum time in seconds for the canary deployment
  # to make progress before it is rollback (default 600s)
  progressDeadlineSeconds: 60
  # HPA reference (optional)
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  service:
    # service port number
    port: 9898
    # container port number or name (optional)
    targetPort: 9898
    # Istio gateways (optional)
    gateways:
    - istio-system/public-gateway
    # Istio virtual service host names (optional)
    hosts:
    - app.example.com
    # Istio traffic policy (optional)
    trafficPolicy:
      tls:
        # use ISTIO_MUTUAL when mTLS is enabled
        mode: DISABLE
    # Istio retry policy (optional)
    retries:
      attempts: 3
      perTryTimeout: 1s
      retryOn: "gateway-error,connect-failure,refused-stream"
  analysis:
    # schedule interval (default 60s)
    interval: 1m
    # max number of failed metric checks before rollback
    threshold: 5
    # max traffic percentage routed to canary
    # percentage (0-100)
    maxWeight: 50
    # canary increment step
    # percentage (0-100)
    stepWeight: 10
    metrics:
    - name: request-success-rate
      # minimum req success rate (non 5xx responses)
      # percentage (0-100)
      thresholdRange:
        min: 99
      interval: 1m
    - name: request-duration
      # maximum req duration P99
      # milliseconds
      thresholdRange:
        max: 500
      interval: 30s
    # testing (optional)
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://flagger-loadtester.test/
        timeout: 30s
        metadata:
          type: bash
          cmd: "curl -sd 'test' http://podinfo-canary:9898/token | grep token"
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"
"#;

/// The Istio tutorial's Canary with session affinity.
const ISTIO_SESSION_AFFINITY_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  # the maximum time in seconds for the canary deployment
  # to make progress before it is rollback (default 600s)
  progressDeadlineSeconds: 60
  # HPA reference (optional)
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  service:
    # service port number
    port: 9898
    # container port number or name (optional)
    targetPort: 9898
    # Istio gateways (optional)
    gateways:
    - istio-system/public-gateway
    # Istio virtual service host names (optional)
    hosts:
    - app.example.com
    # Istio traffic policy (optional)
    trafficPolicy:
      tls:
        # use ISTIO_MUTUAL when mTLS is enabled
        mode: DISABLE
    # Istio retry policy (optional)
    retries:
      attempts: 3
      perTryTimeout: 1s
      retryOn: "gateway-error,connect-failure,refused-stream"
  analysis:
    # schedule interval (default 60s)
    interval: 1m
    # max number of failed metric checks before rollback
    threshold: 5
    # max traffic percentage routed to canary
    # percentage (0-100)
    maxWeight: 50
    # canary increment step
    # percentage (0-100)
    stepWeight: 10
    # session affinity config
    sessionAffinity:
      # name of the cookie used
      cookieName: flagger-cookie
      # max age of the cookie (in seconds)
      # optional; defaults to 86400
      maxAge: 21600
    metrics:
    - name: request-success-rate
      # minimum req success rate (non 5xx responses)
      # percentage (0-100)
      thresholdRange:
        min: 99
      interval: 1m
    - name: request-duration
      # maximum req duration P99
      # milliseconds
      thresholdRange:
        max: 500
      interval: 30s
    # testing (optional)
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://flagger-loadtester.test/
        timeout: 30s
        metadata:
          type: bash
          cmd: "curl -sd 'test' http://podinfo-canary:9898/token | grep token"
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"
"#;

/// The Istio A/B testing tutorial's Canary (docs.flagger.app/tutorials/istio-ab-testing).
const ISTIO_AB_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  # the maximum time in seconds for the canary deployment
  # to make progress before it is rollback (default 600s)
  progressDeadlineSeconds: 60
  # HPA reference (optional)
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  service:
    # container port
    port: 9898
    # Istio gateways (optional)
    gateways:
    - istio-system/public-gateway
    # Istio virtual service host names (optional)
    hosts:
    - app.example.com
    # Istio traffic policy (optional)
    trafficPolicy:
      tls:
        # use ISTIO_MUTUAL when mTLS is enabled
        mode: DISABLE
  analysis:
    # schedule interval (default 60s)
    interval: 1m
    # total number of iterations
    iterations: 10
    # max number of failed iterations before rollback
    threshold: 2
    # canary match condition
    match:
      - headers:
          user-agent:
            regex: ".*Firefox.*"
      - headers:
          cookie:
            regex: "^(.*?;)?(type=insider)(;.*)?$"
    metrics:
    - name: request-success-rate
      # minimum req success rate (non 5xx responses)
      # percentage (0-100)
      thresholdRange:
        min: 99
      interval: 1m
    - name: request-duration
      # maximum req duration P99
      # milliseconds
      thresholdRange:
        max: 500
      interval: 30s
    # generate traffic during analysis
    webhooks:
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 15s
        metadata:
          cmd: "hey -z 1m -q 10 -c 2 -H 'Cookie: type=insider' http://podinfo.test:9898/"
"#;

/// The Gateway API tutorial's MetricTemplates (docs.flagger.app/tutorials/gatewayapi-progressive-delivery).
const GATEWAY_API_METRIC_TEMPLATES: &str = r#"
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: latency
  namespace: flagger-system
spec:
  provider:
    type: prometheus
    address: http://prometheus.istio-system:9090
  query: |
    histogram_quantile(0.99,
      sum(
        rate(
          istio_request_duration_milliseconds_bucket{
            reporter="source",
            destination_workload_namespace=~"{{ namespace }}",
            destination_workload=~"{{ target }}",
          }[{{ interval }}]
        )
      ) by (le)
    )/1000
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: error-rate
  namespace: flagger-system
spec:
  provider:
    type: prometheus
    address: http://prometheus.istio-system:9090
  query: |
    100 - sum(
      rate(
        istio_requests_total{
          reporter="source",
          destination_workload_namespace=~"{{ namespace }}",
          destination_workload=~"{{ target }}",
          response_code!~"5.*"
        }[{{ interval }}]
      )
    )
    /
    sum(
      rate(
        istio_requests_total{
          reporter="source",
          destination_workload_namespace=~"{{ namespace }}",
          destination_workload=~"{{ target }}",
        }[{{ interval }}]
      )
    )
    * 100
"#;

/// The Gateway API tutorial's Canary.
const GATEWAY_API_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  # the maximum time in seconds for the canary deployment
  # to make progress before it is rollback (default 600s)
  progressDeadlineSeconds: 60
  # HPA reference (optional)
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  service:
    # service port number
    port: 9898
    # container port number or name (optional)
    targetPort: 9898
    # Gateway API HTTPRoute host names
    hosts:
     - www.example.com
    # Reference to the Gateway that the generated HTTPRoute would attach to.
    gatewayRefs:
      - name: gateway
        namespace: istio-ingress
  analysis:
    # schedule interval (default 60s)
    interval: 1m
    # max number of failed metric checks before rollback
    threshold: 5
    # max traffic percentage routed to canary
    # percentage (0-100)
    maxWeight: 50
    # canary increment step
    # percentage (0-100)
    stepWeight: 10
    metrics:
    - name: error-rate
      # max error rate (5xx responses)
      # percentage (0-100)
      templateRef:
        name: error-rate
        namespace: flagger-system
      thresholdRange:
        max: 1
      interval: 1m
    - name: latency
      templateRef:
        name: latency
        namespace: flagger-system
      # seconds
      thresholdRange:
         max: 0.5
      interval: 30s
    # testing (optional)
    webhooks:
      - name: smoke-test
        type: pre-rollout
        url: http://flagger-loadtester.test/
        timeout: 15s
        metadata:
          type: bash
          cmd: "curl -sd 'anon' http://podinfo-canary.test:9898/token | grep token"
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 2m -q 10 -c 2 -host www.example.com http://gateway-istio.istio-ingress/"
"#;

/// The Gateway API tutorial's A/B testing Canary.
const GATEWAY_API_AB_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  # the maximum time in seconds for the canary deployment
  # to make progress before it is rollback (default 600s)
  progressDeadlineSeconds: 60
  # HPA reference (optional)
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  service:
    # service port number
    port: 9898
    # container port number or name (optional)
    targetPort: 9898
    # Gateway API HTTPRoute host names
    hosts:
     - www.example.com
    # Reference to the Gateway that the generated HTTPRoute would attach to.
    gatewayRefs:
      - name: gateway
        namespace: istio-ingress
  analysis:
    # schedule interval (default 60s)
    interval: 1m
    # total number of iterations
    iterations: 10
    # max number of failed iterations before rollback
    threshold: 2
    # canary match condition
    match:
      - headers:
          user-agent:
            regex: ".*Firefox.*"
      - headers:
          cookie:
            regex: "^(.*?;)?(type=insider)(;.*)?$"
    metrics:
    - name: error-rate
      # max error rate (5xx responses)
      # percentage (0-100)
      templateRef:
        name: error-rate
        namespace: flagger-system
      thresholdRange:
        max: 1
      interval: 1m
    - name: latency
      templateRef:
        name: latency
        namespace: flagger-system
      # seconds
      thresholdRange:
         max: 0.5
      interval: 30s
    # testing (optional)
    webhooks:
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 2m -q 10 -c 2 -host www.example.com -H 'Cookie: type=insider' http://gateway-istio.istio-ingress/"
"#;

/// The Gateway API tutorial's Canary with session affinity.
const GATEWAY_API_SESSION_AFFINITY_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  # the maximum time in seconds for the canary deployment
  # to make progress before it is rollback (default 600s)
  progressDeadlineSeconds: 60
  # HPA reference (optional)
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  service:
    # service port number
    port: 9898
    # container port number or name (optional)
    targetPort: 9898
    # Gateway API HTTPRoute host names
    hosts:
     - www.example.com
    # Reference to the Gateway that the generated HTTPRoute would attach to.
    gatewayRefs:
      - name: gateway
        namespace: istio-ingress
  analysis:
    # schedule interval (default 60s)
    interval: 1m
    # max number of failed metric checks before rollback
    threshold: 5
    # max traffic percentage routed to canary
    # percentage (0-100)
    maxWeight: 50
    # canary increment step
    # percentage (0-100)
    stepWeight: 10
    # session affinity config
    sessionAffinity:
      # name of the cookie used
      cookieName: flagger-cookie
      # max age of the cookie (in seconds)
      # optional; defaults to 86400
      maxAge: 21600
    metrics:
    - name: error-rate
      # max error rate (5xx responses)
      # percentage (0-100)
      templateRef:
        name: error-rate
        namespace: flagger-system
      thresholdRange:
        max: 1
      interval: 1m
    - name: latency
      templateRef:
        name: latency
        namespace: flagger-system
      # seconds
      thresholdRange:
         max: 0.5
      interval: 30s
    # testing (optional)
    webhooks:
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 2m -q 10 -c 2 -host www.example.com http://gateway-istio.istio-ingress/"
"#;

/// The Gateway API tutorial's traffic mirroring Canary.
const GATEWAY_API_MIRROR_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    # service port number
    port: 9898
    # container port number or name (optional)
    targetPort: 9898
    # Gateway API HTTPRoute host names
    hosts:
     - www.example.com
    # Reference to the Gateway that the generated HTTPRoute would attach to.
    gatewayRefs:
      - name: gateway
        namespace: istio-ingress
  analysis:
    # schedule interval
    interval: 1m
    # max number of failed metric checks before rollback
    threshold: 5
    # total number of iterations
    iterations: 10
    # enable traffic shadowing
    mirror: true
    # Gateway API HTTPRoute host names
    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 99
        interval: 1m
      - name: request-duration
        thresholdRange:
          max: 500
        interval: 1m
    webhooks:
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 2m -q 10 -c 2 -host www.example.com http://gateway-istio.istio-ingress/"
"#;

/// The NGINX tutorial's Canary (docs.flagger.app/tutorials/nginx-progressive-delivery).
const NGINX_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: nginx
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  # ingress reference
  ingressRef:
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    name: podinfo
  # HPA reference (optional)
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  # the maximum time in seconds for the canary deployment
  # to make progress before it is rollback (default 600s)
  progressDeadlineSeconds: 60
  service:
    # ClusterIP port number
    port: 80
    # container port number or name
    targetPort: 9898
  analysis:
    # schedule interval (default 60s)
    interval: 10s
    # max number of failed metric checks before rollback
    threshold: 10
    # max traffic percentage routed to canary
    # percentage (0-100)
    maxWeight: 50
    # canary increment step
    # percentage (0-100)
    stepWeight: 5
    # NGINX Prometheus checks
    metrics:
    - name: request-success-rate
      # minimum req success rate (non 5xx responses)
      # percentage (0-100)
      thresholdRange:
        min: 99
      interval: 1m
    # testing (optional)
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://flagger-loadtester.test/
        timeout: 30s
        metadata:
          type: bash
          cmd: "curl -sd 'test' http://podinfo-canary/token | grep token"
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 1m -q 10 -c 2 http://app.example.com/"
"#;

/// The NGINX tutorial's custom metric.
const NGINX_METRIC_TEMPLATE: &str = r#"
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: latency
  namespace: test
spec:
  provider:
    type: prometheus
    address: http://flagger-prometheus.ingress-nginx:9090
  query: |
    histogram_quantile(0.99,
      sum(
        rate(
          http_request_duration_seconds_bucket{
            kubernetes_namespace="{{ namespace }}",
            kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
          }[1m]
        )
      ) by (le)
    )
"#;

/// The Kubernetes blue/green tutorial's Canary (docs.flagger.app/tutorials/kubernetes-blue-green).
const KUBERNETES_BLUE_GREEN_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: kubernetes
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  # the maximum time in seconds for the canary deployment
  # to make progress before rollback (default 600s)
  progressDeadlineSeconds: 60
  # HPA reference (optional)
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  service:
    port: 9898
    portDiscovery: true
  analysis:
    # schedule interval (default 60s)
    interval: 30s
    # max number of failed checks before rollback
    threshold: 2
    # number of checks to run before rollback
    iterations: 10
    # Prometheus checks based on 
    # http_request_duration_seconds histogram
    metrics:
      - name: request-success-rate
        # minimum req success rate (non 5xx responses)
        # percentage (0-100)
        thresholdRange:
          min: 99
        interval: 1m
      - name: request-duration
        # maximum req duration P99
        # milliseconds
        thresholdRange:
          max: 500
        interval: 30s
    # acceptance/load testing hooks
    webhooks:
      - name: smoke-test
        type: pre-rollout
        url: http://flagger-loadtester.test/
        timeout: 15s
        metadata:
          type: bash
          cmd: "curl -sd 'anon' http://podinfo-canary.test:9898/token | grep token"
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        metadata:
          type: cmd
          cmd: "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"
"#;

/// The Kubernetes blue/green tutorial's custom metric.
const KUBERNETES_BLUE_GREEN_METRIC_TEMPLATE: &str = r#"
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: not-found-percentage
  namespace: test
spec:
  provider:
    type: prometheus
    address: http://flagger-prometheus.flagger:9090
  query: |
    100 - sum(
        rate(
            http_request_duration_seconds_count{
              kubernetes_namespace="{{ namespace }}",
              kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
              status!="{{ interval }}"
            }[1m]
        )
    )
    /
    sum(
        rate(
            http_request_duration_seconds_count{
              kubernetes_namespace="{{ namespace }}",
              kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
            }[{{ interval }}]
        )
    ) * 100
"#;

/// The Linkerd tutorial's Canary, whose `gatewayRefs` name a Service (Gateway API for meshes).
const LINKERD_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  # deployment reference
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  # HPA reference (optional)
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
  # the maximum time in seconds for the canary deployment
  # to make progress before it is rollback (default 600s)
  progressDeadlineSeconds: 60
  service:
    # ClusterIP port number
    port: 9898
    # container port number or name (optional)
    targetPort: 9898
    # Reference to the Service that the generated HTTPRoute would attach to.
    gatewayRefs:
      - name: podinfo
        namespace: test
        group: core
        kind: Service
        port: 9898
  analysis:
    # schedule interval (default 60s)
    interval: 30s
    # max number of failed metric checks before rollback
    threshold: 5
    # max traffic percentage routed to canary
    # percentage (0-100)
    maxWeight: 50
    # canary increment step
    # percentage (0-100)
    stepWeight: 5
    # Linkerd Prometheus checks
    metrics:
    - name: success-rate
      templateRef:
        name: success-rate
        namespace: test
      # minimum req success rate (non 5xx responses)
      # percentage (0-100)
      thresholdRange:
        min: 99
      interval: 1m
      templateVariables:
        direction: inbound
    - name: latency
      templateRef:
        name: latency
        namespace: test
      # maximum req duration P99
      # milliseconds
      thresholdRange:
        max: 500
      interval: 30s
      templateVariables:
        direction: inbound
    # testing (optional)
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: http://flagger-loadtester.test/
        timeout: 30s
        metadata:
          type: bash
          cmd: "curl -sd 'test' http://podinfo-canary.test:9898/token | grep token"
      - name: load-test
        type: rollout
        url: http://flagger-loadtester.test/
        metadata:
          cmd: "hey -z 2m -q 10 -c 2 http://podinfo-canary.test:9898/"
"#;

/// The Prometheus Operator tutorial's Canary, whose `targetPort` is a port name.
const PROMETHEUS_OPERATOR_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: kubernetes
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  progressDeadlineSeconds: 60
  service:
    port: 80
    targetPort: http
    name: podinfo
  analysis:
    interval: 30s
    iterations: 10
    threshold: 2
    metrics:
    - name: error-rate
      templateRef:
        name: error-rate
      thresholdRange:
        max: 1
      interval: 30s
    - name: latency
      templateRef:
        name: latency
      thresholdRange:
        max: 0.5
      interval: 30s
    webhooks:
      - name: load-test
        type: rollout
        url: "http://loadtester.flagger-system/"
        timeout: 5s
        metadata:
          type: cmd
          cmd: "hey -z 1m -q 10 -c 2 http://podinfo-canary.test/"
"#;

/// Every other field of Flagger's v1beta1 Canary, each as a snippet of Flagger's docs shows it
/// (alerting, webhooks, FAQ, Istio and Gateway API customisation, deployment strategies),
/// gathered in one Canary: what no whole example in the docs carries must be accepted too.
const FLAGGER_FIELDS_CANARY: &str = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: istio
  metricsServer: http://prometheus.istio-system:9090
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: podinfo
    primaryScalerQueries:
      prom-trigger: sum(rate(http_requests_total{ app="podinfo-primary" }[30s]))
    primaryScalerReplicas:
      minReplicas: 2
      maxReplicas: 5
  routeRef:
    apiVersion: apisix.apache.org/v2
    kind: ApisixRoute
    name: podinfo
  upstreamRef:
    apiVersion: gloo.solo.io/v1
    kind: Upstream
    name: podinfo-upstream
    namespace: gloo-system
  progressDeadlineSeconds: 60
  skipAnalysis: false
  revertOnDeletion: true
  suspend: false
  service:
    name: podinfo
    port: 8080
    portName: http
    targetPort: http
    appProtocol: http
    portDiscovery: true
    headless: false
    trafficDistribution: PreferClose
    timeout: 30s
    backendTimeout: 10s
    gateways:
    - istio-system/public-gateway
    gatewayRefs:
      - name: gateway
        namespace: istio-ingress
    hosts:
    - app.example.com
    delegation: false
    trafficPolicy:
      tls:
        mode: ISTIO_MUTUAL
    match:
      - uri:
          prefix: /
    rewrite:
      uri: "/api/v2"
      type: "ReplacePrefixMatch"
      authority: "api.example.com"
    retries:
      attempts: 10
      perTryTimeout: 5s
      retryOn: "gateway-error,connect-failure,refused-stream"
    headers:
      request:
        add:
          x-custom-header: "custom-value"
        set:
          x-api-version: "v1"
        remove:
          - x-debug-header
      response:
        add:
          x-frame-options: "DENY"
          x-content-type-options: "nosniff"
        set:
          cache-control: "no-cache"
        remove:
          - x-powered-by
    corsPolicy:
      allowOrigin:
        - https://foo.example
        - http://foo.example
      allowMethods:
        - GET
        - PUT
        - POST
        - DELETE
        - PATCH
        - OPTIONS
      allowCredentials: true
      allowHeaders:
        - Keep-Alive
        - User-Agent
        - X-Requested-With
        - If-Modified-Since
        - Cache-Control
        - Content-Type
        - Authorization
      maxAge: 24h
    mirror:
      - backendRef:
          name: podinfo-shadow
          port: 9898
    meshName: global
    backends:
      - backend1
    apex:
      annotations:
        test: "annotation-test"
      labels:
        test: "label-test"
    primary:
      annotations:
        test: "annotation-test"
    canary:
      labels:
        test: "label-test"
    unmanagedMetadata:
      annotations:
        - team
      labels:
        - owner
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    stepWeightPromotion: 100
    primaryReadyThreshold: 50
    canaryReadyThreshold: 80
    mirror: false
    sessionAffinity:
      cookieName: flagger-cookie
      maxAge: 21600
      primaryCookieName: primary-flagger-cookie
      domain: example.com
      path: /
      httpOnly: true
      secure: true
      sameSite: Lax
      partitioned: false
    alerts:
      - name: "on-call Slack"
        severity: error
        providerRef:
          name: on-call
          namespace: flagger
      - name: "qa Discord"
        severity: warn
        providerRef:
          name: qa-discord
    metrics:
    - name: request-success-rate
      threshold: 99
      interval: 1m
    - name: "404s percentage"
      templateRef:
        name: not-found-percentage
      thresholdRange:
        max: 5
      interval: 1m
    - name: "custom"
      query: sum(rate(http_requests_total[1m]))
      templateVariables:
        direction: inbound
    webhooks:
      - name: "gate"
        type: confirm-rollout
        url: http://flagger-loadtester.test/gate/halt
        muteAlert: true
      - name: "promotion gate"
        type: confirm-promotion
        url: http://flagger-loadtester.test/gate/halt
      - name: "traffic gate"
        type: confirm-traffic-increase
        url: http://flagger-loadtester.test/gate/approve
      - name: "rollback"
        type: rollback
        url: http://flagger-loadtester.test/rollback/check
      - name: "send to Slack"
        type: event
        url: http://event-recevier.notifications/slack
      - name: "k6 load test"
        type: pre-rollout
        url: https://k6-loadtester.flagger/launch-test
        timeout: 5m
        retries: 3
        disableTLS: true
        metadata:
          script: "import http from 'k6/http';"
      - name: "post"
        type: post-rollout
        url: http://flagger-loadtester.test/
"#;

/// A MetricTemplate with Flagger's provider fields Eddy does not use.
const PROVIDER_FIELDS_METRIC_TEMPLATE: &str = r#"
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: tenant-error-rate
  namespace: test
spec:
  provider:
    type: prometheus
    address: https://mimir.example.com/prometheus
    headers:
      X-Scope-OrgID:
        - tenant-a
    secretRef:
      name: prom-auth
    region: eu-west-1
    insecureSkipVerify: false
  query: |
    sum(rate(http_requests_total{namespace="{{ namespace }}",code=~"5.."}[{{ interval }}]))
"#;

/// `text`, Flagger's, moved to Eddy: the apiVersion of every document changed, nothing else.
fn moved_to_eddy(text: &str) -> String {
    let documents = text.matches(FLAGGER_API_VERSION).count();
    assert!(documents > 0, "not a Flagger example: {text}");
    let moved = text.replace(FLAGGER_API_VERSION, EDDY_API_VERSION);
    assert_eq!(moved.lines().count(), text.lines().count());
    let changed: Vec<_> = text.lines().zip(moved.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(changed.len(), documents, "only the apiVersion lines change");
    moved
}

fn kubectl() -> Command {
    let mut command = Command::new(repo_root().join(".cache/cluster/bin/kubectl"));
    command.arg("--kubeconfig").arg(kubeconfig_path());
    command
}

/// `kubectl apply --server-side --validate=strict` of `text`; panics with kubectl's words when
/// it refuses.
///
/// A refusal naming an undeclared field is retried for a while: the CRDs were just (re)installed,
/// possibly over an older schema by another test run, and the API server takes a moment to serve
/// a CRD's new schema.
async fn kubectl_apply(name: &str, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, text).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let output = kubectl()
            .args([
                "apply",
                "--server-side",
                "--validate=strict",
                "--field-manager=flagger-compat",
                "-f",
            ])
            .arg(&file)
            .output()
            .expect("running kubectl");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success()
            && stderr.contains("field not declared in schema")
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        assert!(
            output.status.success(),
            "{name}: kubectl refused Flagger's example with only its apiVersion changed:\n{stderr}"
        );
        assert!(
            !stderr.to_lowercase().contains("unknown field"),
            "{name}: the API server warned about unknown fields:\n{stderr}"
        );
        return;
    }
}

/// The YAML documents of `text` as JSON.
fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(text).expect("the example is YAML")
}

/// Where `given` (what was applied) is not in `found` whole: the paths of leaves that are
/// missing or different. Numbers compare by value (`99` and `99.0` are the same).
fn missing(given: &Value, found: &Value, path: &str, out: &mut Vec<String>) {
    match (given, found) {
        (Value::Object(given), Value::Object(found)) => {
            for (key, value) in given {
                match found.get(key) {
                    Some(other) => missing(value, other, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(given), Value::Array(found)) if given.len() == found.len() => {
            for (index, (value, other)) in given.iter().zip(found).enumerate() {
                missing(value, other, &format!("{path}[{index}]"), out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        _ => out.push(format!("{path}: {given} became {found}")),
    }
}

/// Asserts that the stored object, and the Rust value read from it, hold every field of the
/// applied one unchanged.
fn assert_kept_whole(name: &str, applied: &Value, stored: &Value, typed: &Value) {
    let mut dropped = Vec::new();
    missing(&applied["spec"], &stored["spec"], "spec", &mut dropped);
    assert!(dropped.is_empty(), "{name}: the API server lost {dropped:?}");
    missing(&applied["spec"], &typed["spec"], "spec", &mut dropped);
    assert!(dropped.is_empty(), "{name}: Eddy's Rust types lost {dropped:?}");
}

/// Creates namespace `name` unless it exists (waiting out a deletion); says whether it did.
async fn ensure_namespace(client: &Client, name: &str) -> bool {
    let api: Api<Namespace> = Api::all(client.clone());
    eventually(Duration::from_secs(60), &format!("namespace {name}"), || async {
        match api.get_opt(name).await.unwrap() {
            Some(ns) if ns.metadata.deletion_timestamp.is_none() => Some(false),
            Some(_) => None,
            None => {
                let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
                api.create(&PostParams::default(), &ns).await.ok().map(|_| true)
            }
        }
    })
    .await
}

/// Deletes `name` and waits until it is gone. A controller running against the cluster may have
/// put its finalizer on it and stopped since: after a while the finalizers go too.
async fn delete_and_wait<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let _ = api.delete(name, &DeleteParams::background()).await;
    let started = std::time::Instant::now();
    eventually(Duration::from_secs(30), &format!("{name} to be deleted"), || async {
        if api.get_opt(name).await.unwrap().is_none() {
            return Some(());
        }
        if started.elapsed() > Duration::from_secs(5) {
            let _ = api
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                )
                .await;
        }
        None
    })
    .await;
}

/// One documented Canary, and the fields `ignored_fields` must name for it.
struct Example {
    name: &'static str,
    yaml: &'static str,
    ignored: &'static [&'static str],
    provider: RouterKind,
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn flaggers_documented_canaries_apply_unchanged_but_for_the_api_version() {
    let _namespaces = DOCUMENTED_NAMESPACES.lock().await;
    let client = cluster().await;
    install_crds(&client).await.expect("installing Eddy's CRDs");
    let created = ensure_namespace(&client, "test").await;
    let examples = [
        Example {
            name: "istio",
            yaml: ISTIO_CANARY,
            ignored: &[],
            provider: RouterKind::Istio,
        },
        Example {
            name: "istio-session-affinity",
            yaml: ISTIO_SESSION_AFFINITY_CANARY,
            ignored: &[],
            provider: RouterKind::Istio,
        },
        Example {
            name: "istio-ab-testing",
            yaml: ISTIO_AB_CANARY,
            ignored: &[],
            provider: RouterKind::Istio,
        },
        // Flagger's Gateway API tutorial installs Flagger with `meshProvider=gatewayapi:v1` and
        // gives no provider: such a Canary routes with istio here, and says so.
        Example {
            name: "gatewayapi",
            yaml: GATEWAY_API_CANARY,
            ignored: GATEWAY_API_WITHOUT_PROVIDER,
            provider: RouterKind::Istio,
        },
        Example {
            name: "gatewayapi-ab-testing",
            yaml: GATEWAY_API_AB_CANARY,
            ignored: GATEWAY_API_WITHOUT_PROVIDER,
            provider: RouterKind::Istio,
        },
        Example {
            name: "gatewayapi-session-affinity",
            yaml: GATEWAY_API_SESSION_AFFINITY_CANARY,
            ignored: GATEWAY_API_WITHOUT_PROVIDER,
            provider: RouterKind::Istio,
        },
        Example {
            name: "gatewayapi-mirror",
            yaml: GATEWAY_API_MIRROR_CANARY,
            ignored: GATEWAY_API_WITHOUT_PROVIDER,
            provider: RouterKind::Istio,
        },
        Example {
            name: "linkerd-gatewayapi",
            yaml: LINKERD_CANARY,
            ignored: GATEWAY_API_WITHOUT_PROVIDER,
            provider: RouterKind::Istio,
        },
        Example {
            name: "nginx",
            yaml: NGINX_CANARY,
            ignored: &[],
            provider: RouterKind::Nginx,
        },
        Example {
            name: "kubernetes-blue-green",
            yaml: KUBERNETES_BLUE_GREEN_CANARY,
            ignored: &[],
            provider: RouterKind::Kubernetes,
        },
        Example {
            name: "prometheus-operator",
            yaml: PROMETHEUS_OPERATOR_CANARY,
            ignored: &[],
            provider: RouterKind::Kubernetes,
        },
        Example {
            name: "every-flagger-field",
            yaml: FLAGGER_FIELDS_CANARY,
            ignored: &[
                "routeRef",
                "upstreamRef",
                "autoscalerRef.primaryScalerQueries",
                "service.gatewayRefs",
                "service.backendTimeout",
                "service.mirror",
                "service.rewrite.type",
                "service.meshName",
                "service.backends",
                "service.unmanagedMetadata",
                "analysis.alerts",
                "analysis.webhooks[gate].muteAlert",
                "analysis.sessionAffinity.primaryCookieName",
                "analysis.sessionAffinity.domain",
                "analysis.sessionAffinity.path",
                "analysis.sessionAffinity.httpOnly",
                "analysis.sessionAffinity.secure",
                "analysis.sessionAffinity.sameSite",
            ],
            provider: RouterKind::Istio,
        },
    ];

    let canaries: Api<Canary> = Api::namespaced(client.clone(), "test");
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "test", &eddy_tests::eddy_api_resource("Canary"));
    for example in &examples {
        let text = moved_to_eddy(example.yaml);
        kubectl_apply(example.name, &text).await;
        let applied = documents(&text).remove(0);
        let stored = serde_json::to_value(raw.get("podinfo").await.unwrap()).unwrap();
        let canary = canaries.get("podinfo").await.unwrap_or_else(|err| {
            panic!(
                "{}: the stored Canary does not read as Eddy's type: {err}",
                example.name
            )
        });
        assert_kept_whole(example.name, &applied, &stored, &serde_json::to_value(&canary).unwrap());
        assert_eq!(canary.spec.provider, example.provider, "{}", example.name);
        let ignored = ignored_fields(&canary.spec);
        let fields: Vec<&str> = ignored.iter().map(|line| line.split(": ").next().unwrap()).collect();
        assert_eq!(fields, example.ignored, "{}: {ignored:#?}", example.name);
        delete_and_wait(&canaries, "podinfo").await;
    }

    // What the migration guide tells a user of Flagger's Gateway API examples to add: the
    // provider Flagger took from its `-mesh-provider` flag. Then nothing is left unused.
    let with_provider = moved_to_eddy(GATEWAY_API_CANARY).replacen("spec:\n", "spec:\n  provider: gatewayapi:v1\n", 1);
    kubectl_apply("gatewayapi-with-provider", &with_provider).await;
    let canary = canaries.get("podinfo").await.unwrap();
    assert_eq!(canary.spec.provider, RouterKind::Gatewayapi);
    assert_eq!(ignored_fields(&canary.spec), Vec::<String>::new());
    delete_and_wait(&canaries, "podinfo").await;

    if created {
        delete_namespace(&client, "test").await;
    }
}

#[tokio::test]
#[ignore = "needs the local control plane (scripts/test runs it)"]
async fn flaggers_documented_metric_templates_apply_unchanged_but_for_the_api_version() {
    let _namespaces = DOCUMENTED_NAMESPACES.lock().await;
    let client = cluster().await;
    install_crds(&client).await.expect("installing Eddy's CRDs");
    let mut created = Vec::new();
    for namespace in ["test", "flagger-system"] {
        if ensure_namespace(&client, namespace).await {
            created.push(namespace);
        }
    }
    let examples: [(&str, &str, &[&str]); 4] = [
        ("gatewayapi", GATEWAY_API_METRIC_TEMPLATES, &[]),
        ("nginx", NGINX_METRIC_TEMPLATE, &[]),
        ("kubernetes-blue-green", KUBERNETES_BLUE_GREEN_METRIC_TEMPLATE, &[]),
        (
            "provider-fields",
            PROVIDER_FIELDS_METRIC_TEMPLATE,
            &["provider.headers", "provider.region"],
        ),
    ];
    for (name, yaml, ignored) in examples {
        let text = moved_to_eddy(yaml);
        kubectl_apply(name, &text).await;
        for applied in documents(&text) {
            let namespace = applied["metadata"]["namespace"].as_str().unwrap();
            let template_name = applied["metadata"]["name"].as_str().unwrap();
            let templates: Api<MetricTemplate> = Api::namespaced(client.clone(), namespace);
            let raw: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                namespace,
                &eddy_tests::eddy_api_resource("MetricTemplate"),
            );
            let stored = serde_json::to_value(raw.get(template_name).await.unwrap()).unwrap();
            let template = templates
                .get(template_name)
                .await
                .unwrap_or_else(|err| panic!("{name}/{template_name} does not read as Eddy's type: {err}"));
            assert_kept_whole(name, &applied, &stored, &serde_json::to_value(&template).unwrap());
            let lines = ignored_template_fields(&template.spec);
            let fields: Vec<&str> = lines.iter().map(|line| line.split(": ").next().unwrap()).collect();
            assert_eq!(fields, ignored, "{name}/{template_name}: {lines:#?}");
            delete_and_wait(&templates, template_name).await;
        }
    }
    for namespace in created {
        delete_namespace(&client, namespace).await;
    }
}

/// Applies `desired` as the controller does, retrying while a CRD just Established is not served
/// yet, and reads every object back.
async fn apply_and_read(client: &Client, what: &str, desired: &[Desired]) -> Vec<Value> {
    eventually(Duration::from_secs(20), what, || async {
        match router::apply(client, "progressive-controller", desired).await {
            Ok(()) => Some(()),
            Err(RouterError::Apply {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 404 => None,
            Err(err) => panic!("the API server refused {what}: {err}"),
        }
    })
    .await;
    let mut stored = Vec::new();
    for object in desired {
        let metadata = &object.object["metadata"];
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            metadata["namespace"].as_str().unwrap(),
            &object.resource,
        );
        let read = api.get(metadata["name"].as_str().unwrap()).await.unwrap();
        stored.push(serde_json::to_value(read).unwrap());
    }
    stored
}

/// Asserts that the API server kept every field of every object written (nothing pruned).
fn assert_applied_whole(what: &str, desired: &[Desired], stored: &[Value]) {
    for (object, stored) in desired.iter().zip(stored) {
        let mut dropped = Vec::new();
        missing(&object.object["spec"], &stored["spec"], "spec", &mut dropped);
        assert!(
            dropped.is_empty(),
            "{what}: {} {} lost {dropped:?}",
            object.resource.kind,
            object.object["metadata"]["name"]
        );
    }
}

#[tokio::test]
#[ignore = "needs the local control plane and the peer CRDs (scripts/test runs both)"]
async fn flaggers_route_options_reach_the_istio_and_gateway_api_objects_and_the_services() {
    let (client, ns) = cluster_namespace("flagger-routes").await;
    install_peer_crds(&client).await;
    let service = json!({
        "port": 9898,
        "targetPort": "http",
        "appProtocol": "http",
        "portDiscovery": true,
        "headless": true,
        "trafficDistribution": "PreferClose",
        "timeout": "30s",
        "backendTimeout": "10s",
        "hosts": ["app.example.com"],
        "gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress"}],
        "match": [{"uri": {"prefix": "/api"}, "headers": {"x-tenant": {"exact": "shop"}}}],
        "rewrite": {"uri": "/v2", "authority": "api.example.com", "type": "ReplacePrefixMatch"},
        "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure"},
        "headers": {
            "request": {"add": {"x-custom-header": "custom-value"}, "remove": ["x-debug-header"]},
            "response": {"set": {"cache-control": "no-cache"}},
        },
        "corsPolicy": {
            "allowOrigin": ["https://foo.example"],
            "allowMethods": ["GET", "POST"],
            "allowHeaders": ["Content-Type"],
            "allowCredentials": true,
            "maxAge": "24h",
        },
        "mirror": [{"backendRef": {"name": "shadow", "port": 8080}}],
    });
    let created = create(
        &client,
        &ns,
        json!({
            "apiVersion": "progressive.eddy.dev/v1alpha1",
            "kind": "Canary",
            "metadata": {"name": "web"},
            "spec": {"targetRef": {"kind": "Deployment", "name": "web"}, "service": service},
        }),
    )
    .await
    .expect("creating the Canary");
    let canary: Canary = serde_json::from_value(serde_json::to_value(created).unwrap()).unwrap();
    let target: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "web", "ports": [
                {"containerPort": 9898, "name": "http"},
                {"containerPort": 9797, "name": "metrics"},
            ]}]}},
        },
    }))
    .unwrap();
    let release = Release::new(&canary, ("app".into(), "web".into())).with_target_ports(&target);

    let service_resource = kube::core::ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&());
    let services = vec![Desired {
        resource: service_resource,
        object: release.service_object(
            &release.primary_service,
            &release.primary_selector(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        ),
    }];
    let stored = apply_and_read(&client, "the primary Service", &services).await;
    assert_applied_whole("Service", &services, &stored);
    let ports: Vec<_> = stored[0]["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].clone(), p["port"].clone(), p.get("appProtocol").cloned()))
        .collect();
    assert_eq!(
        ports,
        [
            (json!("http"), json!(9898), Some(json!("http"))),
            (json!("metrics"), json!(9797), None),
        ]
    );
    assert_eq!(stored[0]["spec"]["trafficDistribution"], "PreferClose");
    assert_eq!(stored[0]["spec"]["clusterIP"], "None");

    // An A/B test with one condition keeps one match per rule, which a prefix rewrite needs.
    let ab = Routes {
        matches: vec![RequestMatch {
            headers: BTreeMap::from([(
                "x-canary".into(),
                StringMatch {
                    exact: Some("insider".into()),
                    ..StringMatch::default()
                },
            )]),
            ..RequestMatch::default()
        }],
        ..Routes::primary_only()
    };
    let weighted = Routes {
        primary: 90,
        canary: 10,
        ..Routes::default()
    };
    for routes in [&weighted, &ab] {
        let istio = router::router_for(RouterKind::Istio)
            .desired(&release, routes, &RouterInputs::default())
            .unwrap();
        let stored = apply_and_read(&client, "the istio router's objects", &istio).await;
        assert_applied_whole("istio", &istio, &stored);
        let first = &stored[2]["spec"]["http"][0];
        assert_eq!(first["retries"]["attempts"], 3, "{first:#}");
        assert_eq!(first["corsPolicy"]["maxAge"], "24h");
        assert_eq!(first["match"][0]["uri"]["prefix"], "/api");

        let gateway = router::router_for(RouterKind::Gatewayapi)
            .desired(&release, routes, &RouterInputs::default())
            .unwrap();
        let stored = apply_and_read(&client, "the gatewayapi router's HTTPRoute", &gateway).await;
        assert_applied_whole("gatewayapi", &gateway, &stored);
        let rule = &stored[0]["spec"]["rules"][0];
        assert_eq!(rule["timeouts"]["backendRequest"], "10s");
        let kinds: Vec<_> = rule["filters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["type"].clone())
            .collect();
        assert_eq!(
            kinds,
            [
                "RequestHeaderModifier",
                "ResponseHeaderModifier",
                "URLRewrite",
                "CORS",
                "RequestMirror"
            ]
        );
    }

    let tcp_canary: Canary = {
        let mut tcp = canary.clone();
        tcp.spec.service.app_protocol = Some("TCP".into());
        // A TCP route has no HTTP timeout; the other HTTP options are reported as ignored.
        tcp.spec.service.timeout = None;
        tcp
    };
    let tcp_release = Release::new(&tcp_canary, ("app".into(), "web".into()));
    let tcp = router::router_for(RouterKind::Istio)
        .desired(&tcp_release, &weighted, &RouterInputs::default())
        .unwrap();
    let stored = apply_and_read(&client, "the istio router's TCP VirtualService", &tcp).await;
    assert_eq!(stored[2]["spec"]["tcp"][0]["route"][1]["weight"], 10);
    assert!(stored[2]["spec"].get("http").is_none());

    delete_namespace(&client, &ns).await;
}

#[test]
fn the_examples_change_only_their_api_version() {
    for text in [ISTIO_CANARY, GATEWAY_API_METRIC_TEMPLATES, FLAGGER_FIELDS_CANARY] {
        let moved = moved_to_eddy(text);
        assert!(!moved.contains("flagger.app/v1beta1"));
        assert_eq!(
            documents(&moved)
                .iter()
                .map(|d| d["apiVersion"].clone())
                .collect::<Vec<_>>(),
            documents(text)
                .iter()
                .map(|_| json!("progressive.eddy.dev/v1alpha1"))
                .collect::<Vec<_>>()
        );
    }
}
