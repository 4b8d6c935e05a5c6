/** Builds a routing strategy by name. */
import type { RoutingStrategyName } from '../options.ts';
import { LeastLoadedStrategy } from './least-loaded.ts';
import { PowerOfTwoStrategy } from './power-of-two.ts';
import { RoundRobinStrategy } from './round-robin.ts';
import type { RoutingStrategy } from './strategy.ts';

/** The strategy for a configured name. */
export function createStrategy(name: RoutingStrategyName): RoutingStrategy {
  switch (name) {
    case 'power-of-two':
      return new PowerOfTwoStrategy();
    case 'least-loaded':
      return new LeastLoadedStrategy();
    case 'round-robin':
      return new RoundRobinStrategy();
  }
}
