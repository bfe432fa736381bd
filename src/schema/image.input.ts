import { Field, InputType } from 'type-graphql';
import { FileUpload, GraphQLUpload } from './upload.scalar';

@InputType({
  description:
    'One image: exactly one of `file` (a multipart upload) or `base64` (the file’s bytes, base64-encoded). PNG, JPEG, WebP, GIF (first frame) or TIFF; the format is read from the bytes.',
})
export class ImageInput {
  @Field(() => GraphQLUpload, { nullable: true, description: 'The image file, as a part of a multipart request.' })
  file?: Promise<FileUpload> | null;

  @Field(() => String, {
    nullable: true,
    description:
      'The image file’s bytes in base64 (standard or URL-safe alphabet), for clients that cannot send multipart.',
  })
  base64?: string | null;
}
