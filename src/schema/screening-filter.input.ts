import { GraphQLDateTime } from 'graphql-scalars';
import { Field, InputType } from 'type-graphql';

@InputType({ description: 'Which audit records `screenings` returns; every condition given must hold.' })
export class ScreeningFilter {
  @Field(() => Boolean, {
    nullable: true,
    description: 'Only images flagged as adversarial (true) or only those screened clean (false).',
  })
  flagged?: boolean | null;

  @Field(() => GraphQLDateTime, { nullable: true, description: 'Verdicts made at or after this time.' })
  since?: Date | null;

  @Field(() => GraphQLDateTime, { nullable: true, description: 'Verdicts made before this time.' })
  until?: Date | null;

  @Field(() => String, { nullable: true, description: 'Only this image file (SHA-256, 64 hex digits).' })
  sha256?: string | null;

  @Field(() => String, {
    nullable: true,
    description: 'Only rows of this field: screen, attack, classify, defend, spectrum or trajectory.',
  })
  operation?: string | null;

  @Field(() => String, { nullable: true, description: 'Only requests made with this API key (its id).' })
  keyId?: string | null;

  @Field(() => String, { nullable: true, description: 'Only verdicts of this model (its id).' })
  modelId?: string | null;
  @Field(() => String, { nullable: true, description: 'Only the verdicts of this screening job.' })
  jobId?: string | null;
}
