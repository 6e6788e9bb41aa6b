/**
 * Every topic the gateway publishes or answers on (contract §5, §6), in one place. Pure.
 */

export interface GatewayTopics {
  /** `<base>/<gatewayId>` — nothing below it is ever read as a sensor reading. */
  root: string;
  prediction(asset: string): string;
  alert(asset: string): string;
  status: string;
  modelEvents: string;
  request(path: string): string;
  response(path: string): string;
}

export function gatewayTopics(baseTopic: string, gatewayId: string): GatewayTopics {
  const root = `${baseTopic}/${gatewayId}`;
  return {
    root,
    prediction: (asset) => `${root}/predictions/${asset}`,
    alert: (asset) => `${root}/alerts/${asset}`,
    status: `${root}/status`,
    modelEvents: `${root}/models/events`,
    request: (path) => `${root}/request/${path}`,
    response: (path) => `${root}/response/${path}`,
  };
}
