/**
 * The operation types this service runs: queries and mutations. The schema has no subscriptions
 * and the transport serves none, and graphql-js answers a subscription document with an execution
 * error that Apollo sends as HTTP 200 INTERNAL_SERVER_ERROR — a client could not tell a server
 * fault from its own mistake. Refused here with a code of its own, whatever the path to the
 * document (sent, or a persisted query's hash).
 */
import type { ApolloServerPlugin } from '@apollo/server';
import { requestError } from '../request/errors';

export function operationNotSupported(type: string) {
  return requestError(
    'OPERATION_NOT_SUPPORTED',
    `${type} operations are not supported by this service: send a query or a mutation`,
    400,
  );
}

/** Refuses any operation other than a query or a mutation once Apollo has resolved which one runs. */
export function onlyQueriesAndMutations(): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation }) {
          if (operation && operation.operation !== 'query' && operation.operation !== 'mutation')
            throw operationNotSupported(operation.operation);
        },
      };
    },
  };
}
