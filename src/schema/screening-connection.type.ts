import { Field, Int, ObjectType } from 'type-graphql';
import type { ScreeningFilter } from '../audit/auditLog';
import { Screening } from './screening.type';

@ObjectType({ description: 'One record of a page, with the cursor that continues after it.' })
export class ScreeningEdge {
  @Field(() => String, { description: 'Opaque; pass as `after` to continue after this record.' })
  cursor!: string;

  @Field(() => Screening)
  node!: Screening;
}

@ObjectType()
export class PageInfo {
  @Field(() => Boolean)
  hasNextPage!: boolean;

  @Field(() => String, { nullable: true, description: 'The last edge’s cursor; null on an empty page.' })
  endCursor?: string | null;
}

@ObjectType({ description: 'A page of audit records, newest first.' })
export class ScreeningConnection {
  @Field(() => [ScreeningEdge])
  edges!: ScreeningEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;

  @Field(() => Int, { description: 'Records matching the filter, all pages together (counted when asked for).' })
  totalCount!: number;

  /** The filter the page was read with, for `totalCount` (not a GraphQL field). */
  filter!: ScreeningFilter;
}
