"""Traffic providers: builtin (an nginx router), gatewayAPI (HTTPRoute), istio (VirtualService).

All pure: a :class:`Split` in, Kubernetes objects (or an nginx.conf) out.
"""

from mlops_operator.traffic.split import OVERRIDE_HEADER, VARIANT_HEADER, Split, Sticky

__all__ = ["OVERRIDE_HEADER", "VARIANT_HEADER", "Split", "Sticky"]
