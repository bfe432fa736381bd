import { Arg } from 'type-graphql';

/**
 * The `model` argument of every field that judges images: the id of one of the models served
 * (the `models` query lists them); omitted, the default model judges, as it did before there were
 * several.
 */
export function ModelArg(): ReturnType<typeof Arg> {
  return Arg('model', () => String, {
    nullable: true,
    description: 'Id of the model to judge with (the `models` query lists them); default: the service’s default model.',
  });
}
