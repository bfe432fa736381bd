import { Field, ObjectType } from 'type-graphql';

/** What every per-image result says of the image and who judged it (classify, screen, defend, …). */
@ObjectType({
  description: 'Abstract: the fields every per-image result shares; not a type of the schema (nothing returns it).',
})
export abstract class JudgedImage {
  @Field(() => String, { nullable: true, description: 'SHA-256 of the file as received.' })
  sha256?: string;

  @Field(() => String, {
    nullable: true,
    description: 'Id of the model that judged the image (the `model` argument, else the default model).',
  })
  model?: string;
}
