import { Field, ObjectType } from 'type-graphql';

@ObjectType({
  description:
    'Why this image alone got no answer: UNSUPPORTED_FORMAT, CORRUPT_IMAGE, IMAGE_TOO_LARGE (pixel limit), EMPTY_IMAGE, INVALID_BASE64 or INFERENCE_FAILED. The request’s other images are answered.',
})
export class ImageError {
  @Field(() => String)
  code!: string;

  @Field(() => String)
  message!: string;
}
