package main

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc/codes"
)

// namespaceCheckTimeout bounds the start-up check: the frontend has just
// answered the dial, so a slow answer here means something is wrong.
const namespaceCheckTimeout = 10 * time.Second

// checkNamespace proves that the connection can do real work in the
// namespace. Dialling alone does not: a Temporal frontend answers its health
// and system-info calls to anyone, so a missing API key, a client
// certificate without rights or a misspelt namespace would otherwise surface
// only on the first workflow start, long after the process reported ready.
func checkNamespace(ctx context.Context, c client.Client, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, namespaceCheckTimeout)
	defer cancel()
	_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	if err == nil {
		return nil
	}
	if serviceerror.ToStatus(err).Code() == codes.NotFound {
		return fmt.Errorf("namespace %q does not exist on this Temporal cluster (TEMPORAL_NAMESPACE): %w", namespace, err)
	}
	return explainRefusal(fmt.Errorf("describe namespace %q: %w", namespace, err))
}

// explainRefusal names the settings to check when Temporal refuses the
// caller's credentials; other errors pass unchanged.
func explainRefusal(err error) error {
	switch serviceerror.ToStatus(err).Code() {
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("credentials refused: check TEMPORAL_API_KEY, or TEMPORAL_TLS_CERT and its rights on TEMPORAL_NAMESPACE: %w", err)
	}
	return err
}
